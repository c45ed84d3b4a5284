"""Shape arithmetic: the textbook formulas, worked layer by layer before any tensor exists.

    convolution / pooling:    o  = ⌊(i + 2p − d(k − 1) − 1) / s⌋ + 1     (d: dilation; pooling d = 1)
    transposed convolution:   o' = s(i' − 1) + a + d(k − 1) + 1 − 2p      (a: output padding, a < s)
    padding "valid":          p = 0
    padding "same":           o = ⌈i / s⌉; the total padding max((o − 1)s + d(k − 1) + 1 − i, 0) is
                              split left = total // 2, right = the rest (TensorFlow's rule, which
                              also works for stride > 1, where PyTorch's own padding="same" refuses)
    receptive field, jump:    r ← r + (k_eff − 1)·j,  j ← j·s,  with k_eff = d(k − 1) + 1
    a transposed convolution as a plain one (the tutorial's view): insert s − 1 zeros between the
    inputs, pad with p' = 2(k_eff − 1) − P in all (P: the encoder's padding, both sides), add
    a = (i + P − k_eff) mod s on one side, convolve with stride 1.

The same formulas hold along each spatial axis, so one plan serves 1-D (a series, C×L), 2-D
(images, C×H×W) and 3-D inputs (volumes and clips, C×D×H×W): the number of axes is the length of
`model.input_shape` minus one. Kernel, stride, padding, dilation and the pool's numbers are one
integer (every axis) or a list with one per axis; a row keeps one integer where all axes agree
(what a 2-D table always showed) and a tuple per axis where they differ (`per_axis` reads both).

`plan(model)` turns the model settings into a list of `Layer` rows — the shape table: numbers
only, no tensors — and raises `ShapeError` naming the layer and the numbers when a setting
cannot work (`fixes` then finds nearby settings that do). The torch modules are built from the
same rows (`convnet.py`, `convae.py`; the few modules torch lacks are in `modules.py`), so the
table and the tensors cannot disagree. Pure Python: it runs in the settings check, before
torch is imported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, List, Optional, Tuple

from cnnexp.core.errors import SettingsError, ShapeError

Shape = Tuple[int, ...]  # (C, L), (C, H, W), (C, D, H, W) or (features,)
POOLS = {"max": "MaxPool", "avg": "AvgPool", "l2": "L2Pool"}  # pool name → module class, less its "1d/2d/3d"
AXES = {1: "length", 2: "height, width", 3: "depth, height, width"}  # spatial axes → what to call them
HEIGHT = {1: 0, 2: 0, 3: 1}  # the axis a worked formula and a picture's rows follow: a series' length, the height
NORMS = ("none", "batch", "group")
ACTIVATIONS = ("relu", "gelu", "silu", "leaky_relu", "none")
BYTES_PER_VALUE = 4  # float32 activations


@dataclass(frozen=True)
class Layer:
    """One row of the shape plan: a layer's numbers, from which its torch module is built."""

    block: str                   # block1 … blockN, head, decoder1 …
    kind: str                    # conv, batchnorm, groupnorm, maxpool, avgpool, l2pool, convT, flatten, linear
    in_shape: Shape
    out_shape: Shape
    params: int = 0
    kernel: Any = None           # int (every axis), or a tuple per axis where they differ
    stride: Any = None
    padding: Any = None          # int (or a tuple per axis), or "same"/"valid" with the pads below
    pads: Tuple[Tuple[int, int], ...] = ((0, 0), (0, 0))  # (before, after) per axis: (top, bottom), (left, right) in 2-D
    output_padding: Tuple[int, ...] = (0, 0)
    crop: Optional[Tuple[int, ...]] = None  # convT mirroring an asymmetric "same": positions dropped in front, per axis
    formula: str = ""            # the worked formula for the height (a series: its length), when worth showing
    dilation: Any = 1
    groups: int = 1              # conv: channel groups; groupnorm: its groups
    bias: bool = True
    activation: str = "none"     # conv rows: what follows the block's (norm and) conv
    rf: Any = None               # receptive field of one output unit, in input pixels (a tuple where axes differ)
    jump: Any = None             # input pixels between neighbouring output units (effective stride)
    start: Any = None            # input position of the first output unit's centre
    macs: int = 0                # multiply-accumulates per image

    @property
    def symmetric(self) -> bool:
        """One padding all round, what nn.Conv2d's `padding=p` does. "same" on a non-square input can
        pad each axis evenly but by different amounts (8×11, k 3, s 3: rows 0, columns 1 each side)."""
        return len({side for axis in self.pads for side in axis}) == 1

    @property
    def dims(self) -> int:
        """Spatial axes of the layer's input: 1, 2 or 3 (0 for the head's flat rows)."""
        return len(self.in_shape) - 1

    def axes(self, name: str) -> Tuple:
        """kernel, stride, dilation, rf, jump, start … one value per spatial axis."""
        return per_axis(getattr(self, name), self.dims)

    @property
    def memory(self) -> int:
        """Bytes of this layer's output for one image (what the backward pass keeps)."""
        return math.prod(self.out_shape) * BYTES_PER_VALUE

    @property
    def zeros_padding_extra(self) -> Tuple[int, Tuple[int, int], int]:
        """convT rows, the tutorial's view: zeros inserted between inputs, padding p' (before,
        after) and the extra a, so that a stride-1 convolution gives this row's output."""
        k_eff = effective_kernel(self.axes("kernel")[0], self.axes("dilation")[0])
        a = self.output_padding[0]
        before = k_eff - 1 - self.padding
        return self.axes("stride")[0] - 1, (before, before), a


# ------------------------------------------------------------------ one value, or one per axis
def per_axis(value: Any, dims: int) -> Tuple:
    """A setting or a row's value as one entry per spatial axis: 3 → (3, 3); [3, 5] → (3, 5)."""
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,) * dims


def one(values) -> Any:
    """Back to one value where every axis agrees, as a 2-D row always held it; else the tuple."""
    values = tuple(values)
    return values[0] if len(set(values)) == 1 else values


def axes_text(value: Any) -> str:
    """3 → "3", (3, 5) → "3×5": a row's value as the table prints it."""
    return "×".join(map(str, value)) if isinstance(value, tuple) else str(value)


def window_text(sizes: Tuple[int, ...]) -> str:
    """A kernel or pool window in words: "7-tap" along a series, "3×3" in 2-D, "3×3×3" in 3-D."""
    return f"{sizes[0]}-tap" if len(sizes) == 1 else "×".join(map(str, sizes))


# ------------------------------------------------------------------ the formulas, one number each
def effective_kernel(k: int, d: int = 1) -> int:
    return d * (k - 1) + 1


def conv_out(i: int, k: int, s: int, p: int, d: int = 1) -> int:
    """o = ⌊(i + 2p − d(k − 1) − 1)/s⌋ + 1 (convolution and pooling, symmetric padding p)."""
    return (i + 2 * p - effective_kernel(k, d)) // s + 1


def same_pads(i: int, k: int, s: int, d: int = 1) -> Tuple[int, int]:
    """Padding (before, after) that makes o = ⌈i/s⌉."""
    total = max((math.ceil(i / s) - 1) * s + effective_kernel(k, d) - i, 0)
    return total // 2, total - total // 2


def transposed_out(i: int, k: int, s: int, p: int, a: int = 0, d: int = 1) -> int:
    """o' = s(i' − 1) + a + d(k − 1) + 1 − 2p."""
    return s * (i - 1) + a + effective_kernel(k, d) - 2 * p


def _num(n: int) -> str:
    return str(n).replace("-", "−")


def _pads_for(padding: Any, i: int, k_eff: int, s: int) -> Tuple[int, int]:
    if padding == "valid":
        return 0, 0
    if padding == "same":
        return same_pads(i, k_eff, s)
    return int(padding), int(padding)


def _window(block: str, kind: str, i: int, k: int, s: int, pads: Tuple[int, int], d: int = 1,
            window: str = "") -> Tuple[int, str]:
    """Output size of a conv/pool window along one axis, or ShapeError with the worked formula.
    `window`: the whole kernel in words (window_text), k×k when not given."""
    before, after = pads
    k_text = str(k) if d == 1 else f"{d}·({k} − 1) − 1"
    if before == after:
        expr = f"⌊({i} + 2·{before} − {k_text})/{s}⌋ + 1"
    else:
        expr = f"⌊({i} + {before} + {after} − {k_text})/{s}⌋ + 1"
    k_eff = effective_kernel(k, d)
    o = (i + before + after - k_eff) // s + 1
    if o < 1:
        window = window or f"{k}×{k}"
        span = f"{window} kernel" if d == 1 else f"{window} kernel dilated by {d} (spanning {k_eff})"
        raise ShapeError(
            f"{block} {kind}: {expr} = {_num(o)} < 1 — the {span} is larger than its "
            f"padded input ({i} + {before + after}).")
    return o, f"{expr} = {o}"


# ------------------------------------------------------------------ settings → blocks
SHORTCUTS = ("kernel_size", "stride", "padding", "pool", "norm", "norm_groups", "activation", "dilation",
             "groups", "bias")


def resolve_blocks(model: Any) -> List[Any]:
    """The conv blocks with the global shortcuts (model.kernel_size, …) applied to every block."""
    set_ = {k: getattr(model, k) for k in SHORTCUTS if getattr(model, k, None) is not None}
    return [replace(b, **set_) for b in model.blocks]


def _block_key(model: Any, n: int, key: str) -> str:
    """The key a user types to change `key` of block n (1-based): the shortcut when it is set."""
    return f"model.{key}" if getattr(model, key, None) is not None else f"model.blocks.{n - 1}.{key}"


def _divisors(*values: int) -> List[int]:
    return [g for g in range(1, min(values) + 1) if all(v % g == 0 for v in values)]


class _Field:
    """Receptive field, jump and first centre per axis, carried from layer to layer."""

    def __init__(self, dims: int):
        self.r, self.j, self.start = [1] * dims, [1] * dims, [0.0] * dims

    def step(self, k_effs, strides, befores) -> dict:
        """Through one window (k_eff, stride and padding in front, per axis); the row's rf/jump/start."""
        for a, (k_eff, s, before) in enumerate(zip(k_effs, strides, befores)):
            self.start[a] += ((k_eff - 1) / 2 - before) * self.j[a]
            self.r[a] += (k_eff - 1) * self.j[a]
            self.j[a] *= s
        return self.now()

    def now(self) -> dict:
        return dict(rf=one(self.r), jump=one(self.j), start=one(self.start))


def _conv_row(model: Any, n: int, b: Any, c: int, size: Tuple[int, ...], field: _Field) -> Layer:
    """Block n's convolution on a c×size input (the checks of its groups and norm first)."""
    name, dims = f"block{n}", len(size)
    ks, ss, ds, g = per_axis(b.kernel_size, dims), per_axis(b.stride, dims), per_axis(b.dilation, dims), b.groups
    if c % g or b.channels % g:
        raise SettingsError(_block_key(model, n, "groups"), g,
                            f"{name} conv has {c} input and {b.channels} output channels; groups must divide "
                            f"both: {', '.join(map(str, _divisors(c, b.channels)))}")
    if b.norm == "group" and b.channels % b.norm_groups:
        raise SettingsError(_block_key(model, n, "norm_groups"), b.norm_groups,
                            f"{name} has {b.channels} channels; norm_groups must divide them: "
                            f"{', '.join(map(str, _divisors(b.channels)))}")
    k_effs = [effective_kernel(k, d) for k, d in zip(ks, ds)]
    paddings = per_axis(b.padding, dims)
    pads = tuple(_pads_for(p, i, k_eff, s) for p, i, k_eff, s in zip(paddings, size, k_effs, ss))
    out, formulas = [], []
    try:
        for i, k, s, pad, d in zip(size, ks, ss, pads, ds):
            o, formula = _window(name, "conv", i, k, s, pad, d, window_text(ks))
            out.append(o)
            formulas.append(formula)
    except ShapeError as e:
        e.block = n
        raise
    bias = b.norm == "none" if b.bias == "auto" else bool(b.bias)
    taps = math.prod(ks) * (c // g)  # weights one output value reads
    padding = b.padding if b.padding in ("same", "valid") else one(int(p) for p in paddings)
    return Layer(name, "conv", (c, *size), (b.channels, *out), b.channels * taps + (b.channels if bias else 0),
                 one(ks), one(ss), padding, pads, formula=formulas[HEIGHT[len(size)]], dilation=one(ds), groups=g, bias=bias,
                 activation=b.activation, macs=b.channels * math.prod(out) * taps,
                 **field.step(k_effs, ss, [p[0] for p in pads]))


def _pool_row(n: int, b: Any, c: int, size: Tuple[int, ...], field: _Field) -> Layer:
    """Block n's pool on a c×size input."""
    name, dims, kind = f"block{n}", len(size), f"{b.pool}pool"
    pks, pss, pps = (per_axis(v, dims) for v in (b.pool_kernel, b.pool_stride, b.pool_padding))
    out, formulas = [], []
    try:
        for i, pk, ps, pp in zip(size, pks, pss, pps):
            if 2 * pp > pk:
                window = f"{pk}-wide" if dims == 1 else "×".join([str(pk)] * dims)
                raise ShapeError(f"{name} {kind}: padding {pp} is more than half the {window} window "
                                 f"(PyTorch needs p ≤ k/2 = {pk / 2:g}).")
            if dims == 3 and b.pool != "max" and i < pk:  # torch's avg_pool3d (l2 uses it) counts no padding here
                raise ShapeError(f"{name} {kind}: the {window_text(pks)} window is larger than its unpadded "
                                 f"{'×'.join(map(str, size))} input ({i} < {pk}); PyTorch's 3-D average pooling "
                                 "needs each axis at least the window, padding aside.")
            o, formula = _window(name, kind, i, pk, ps, (pp, pp), 1, window_text(pks))
            out.append(o)
            formulas.append(formula)
    except ShapeError as e:
        e.block = n
        raise
    return Layer(name, kind, (c, *size), (c, *out), 0, one(pks), one(pss), one(pps),
                 tuple((pp, pp) for pp in pps), formula=formulas[HEIGHT[len(size)]], **field.step(pks, pss, pps))


def _conv_stack(model: Any) -> List[Layer]:
    c, *size = model.input_shape
    size = tuple(size)
    field = _Field(len(size))
    layers: List[Layer] = []
    for n, b in enumerate(resolve_blocks(model), start=1):
        conv = _conv_row(model, n, b, c, size, field)
        layers.append(conv)
        c, size = conv.out_shape[0], conv.out_shape[1:]
        pool_first = getattr(model, "pool_first", False) and b.pool != "none"
        norm = None if b.norm == "none" else Layer(conv.block, f"{b.norm}norm", (c, *size), (c, *size), 2 * c,
                                                     groups=b.norm_groups if b.norm == "group" else 1)
        if norm and not pool_first:
            layers.append(replace(norm, **field.now()))
        if b.pool == "none":
            continue
        pool = _pool_row(n, b, c, size, field)
        layers.append(pool)
        size = pool.out_shape[1:]
        if norm and pool_first:  # the norm (and the activation) work on a fraction of the values
            layers.append(replace(norm, in_shape=(c, *size), out_shape=(c, *size), **field.now()))
    return layers


def _classifier_head(model: Any, features: Shape) -> List[Layer]:
    flat = math.prod(features)
    layers = [Layer("head", "flatten", features, (flat,))]
    width = flat
    for hidden in list(model.head.hidden) + [model.num_classes]:
        layers.append(Layer("head", "linear", (width,), (hidden,), width * hidden + hidden, macs=width * hidden))
        width = hidden
    return layers


def _mirror(encoder: List[Layer]) -> List[Layer]:
    """Transposed convolutions that undo each encoder layer's geometry, exactly, along each axis.

    For a layer that took size i to o with kernel k (dilation d, k_eff = d(k − 1) + 1), stride s
    and pads (before, after), the transposed convolution with padding `before` gives
    s(o − 1) + a + k_eff − 2·before; the output padding a = i + 2·before − k_eff − s(o − 1) lies
    in [0, s) whenever the pads are equal. For the unequal pads of "same", it runs unpadded,
    adds a = (i + before + after) − (s(o − 1) + k_eff), and crops `before` from the front.
    """
    layers = []
    windows = [l for l in encoder if l.kind == "conv" or l.kind.endswith("pool")]
    for n, enc in enumerate(reversed(windows), start=1):
        (c_in, *size_in), (c_out, *size_out) = enc.in_shape, enc.out_shape
        ks, ss, ds = enc.axes("kernel"), enc.axes("stride"), enc.axes("dilation")
        k_effs = [effective_kernel(k, d) for k, d in zip(ks, ds)]
        pad = enc.pads[0][0] if enc.symmetric else 0
        out_pad, crop = [], []
        for i, o, (before, after), k_eff, s in zip(size_in, size_out, enc.pads, k_effs, ss):
            if enc.symmetric:
                out_pad.append(i + 2 * pad - k_eff - s * (o - 1))
                crop.append(0)
            else:
                out_pad.append(i + before + after - k_eff - s * (o - 1))
                crop.append(before)
        h = HEIGHT[len(ks)]
        size = transposed_out(size_out[h], ks[h], ss[h], pad, out_pad[h], ds[h])
        formula = f"{ss[h]}·({size_out[h]} − 1) + {out_pad[h]} + {k_effs[h]} − 2·{pad} = {size}"
        if not enc.symmetric:
            formula += f", cropped to {size_in[h]}"
        taps = math.prod(ks)
        layers.append(Layer(f"decoder{n}", "convT", enc.out_shape, enc.in_shape, c_out * c_in * taps + c_in,
                            enc.kernel, enc.stride, pad, tuple((pad, pad) for _ in ks), tuple(out_pad),
                            None if enc.symmetric else tuple(crop), formula, dilation=enc.dilation,
                            macs=c_out * math.prod(size_out) * c_in * taps))
    return layers


def plan(model: Any) -> List[Layer]:
    """The shape table of a model: encoder blocks, then the classifier head or the decoder."""
    encoder = _conv_stack(model)
    from cnnexp.core.catalogue import TASKS

    if TASKS[model.task].decoder:
        return encoder + _mirror(encoder)
    return encoder + _classifier_head(model, encoder[-1].out_shape)


def receptive_box(layer: Layer, height: int, width: int) -> Tuple[float, float, float, float]:
    """The input pixels (x0, y0, x1, y1), clipped to the image, that the centre output unit of a 2-D
    `layer` sees (of a 3-D one: in its height×width plane): its rf pixels around the centre the
    start/jump recursion gives."""
    (oh, ow), (rh, rw), (jh, jw), (sh, sw) = layer.out_shape[-2:], *(layer.axes(k)[-2:] for k in ("rf", "jump", "start"))
    cy, cx = sh + (oh // 2) * jh, sw + (ow // 2) * jw
    return (max(cx - (rw - 1) / 2, 0), max(cy - (rh - 1) / 2, 0),
            min(cx + (rw - 1) / 2 + 1, width), min(cy + (rh - 1) / 2 + 1, height))


def total_params(layers: List[Layer]) -> int:
    return sum(layer.params for layer in layers)


def total_macs(layers: List[Layer]) -> int:
    return sum(layer.macs for layer in layers)


def memory_estimate(layers: List[Layer], batch: int, optimizer: str) -> int:
    """Bytes to train in float32: weights, gradients and optimizer state (two copies for Adam,
    one for SGD's momentum), and each layer's output for a batch, kept for the backward pass
    (×2 with its gradient)."""
    states = 1 if optimizer == "sgd" else 2
    activations = sum(layer.memory for layer in layers)
    return 4 * total_params(layers) * (2 + states) + 2 * batch * activations


# ------------------------------------------------------------------ settings that would work
def fixes(model: Any, block: int, limit: int = 3) -> List[List[str]]:
    """Up to `limit` override sets, nearest first, each of which makes the model's plan work,
    found by trying candidate changes through `plan` itself. `block`: the failing block, 1-based."""
    blocks = resolve_blocks(model)
    first: List[Tuple[str, Any]] = []
    n = block - 1
    first.append((_block_key(model, block, "padding"), "same"))
    first.append((_block_key(model, block, "pool"), "none"))
    dims = len(model.input_shape) - 1
    big = lambda value: max(per_axis(value, dims))  # noqa: E731  (a per-axis list: its largest)
    pool_kernels, pool_pads = per_axis(blocks[n].pool_kernel, dims), per_axis(blocks[n].pool_padding, dims)
    if any(2 * p > k for p, k in zip(pool_pads, pool_kernels)):
        first.append((_block_key(model, block, "pool_padding"), min(pool_kernels) // 2))
    for key, smaller in (("stride", 1), ("dilation", 1)):
        if any(big(getattr(b, key)) > 1 for b in blocks[: block]):
            if getattr(model, key, None) is not None:
                first.append((f"model.{key}", smaller))
            else:
                first += [(f"model.blocks.{i}.{key}", smaller) for i in range(block - 1, -1, -1)
                          if big(getattr(blocks[i], key)) > 1]
    k = big(blocks[n].kernel_size)
    top = k - 2 if k <= 66 else 64 + k % 2  # a huge kernel: the smaller ones worth trying start near the images' size
    first += [(_block_key(model, block, "kernel_size"), kk) for kk in range(top, 0, -2)]
    first += [(f"model.blocks.{i}.pool", "none") for i in range(block - 2, -1, -1)
              if blocks[i].pool != "none" and model.pool is None]
    if model.padding is None:
        first.append(("model.padding", "same"))
    single = list(dict.fromkeys(first))  # nearest first: one change, then pairs of changes
    candidates = [[c] for c in single] + [[a, b] for i, a in enumerate(single) for b in single[i + 1:] if a[0] != b[0]]
    found: List[List[str]] = []
    for changes in candidates:
        try:
            plan(_with(model, changes))
        except (ShapeError, SettingsError):
            continue
        found.append([f"{key}={value}" for key, value in changes])
        if len(found) == limit:
            break
    return found


def _with(model: Any, changes: List[Tuple[str, Any]]) -> Any:
    """The model settings with dotted `model.…` changes applied (a copy)."""
    blocks = list(model.blocks)
    top = {}
    for key, value in changes:
        parts = key.split(".")
        if parts[1] == "blocks":
            i = int(parts[2])
            blocks[i] = replace(blocks[i], **{parts[3]: value})
        else:
            top[parts[1]] = value
    return replace(model, blocks=blocks, **top)
