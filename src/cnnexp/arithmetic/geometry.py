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

Shape = Tuple[int, ...]  # (C, H, W) or (features,)
POOLS = {"max": "MaxPool2d", "avg": "AvgPool2d", "l2": "L2Pool2d"}  # pool name → module class
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
    kernel: Optional[int] = None
    stride: Optional[int] = None
    padding: Any = None          # int, or "same"/"valid" with the pads below
    pads: Tuple[Tuple[int, int], Tuple[int, int]] = ((0, 0), (0, 0))  # (top, bottom), (left, right)
    output_padding: Tuple[int, int] = (0, 0)
    crop: Optional[Tuple[int, int]] = None  # convT mirroring an asymmetric "same": rows/cols dropped in front
    formula: str = ""            # the worked formula for the height, when it is worth showing
    dilation: int = 1
    groups: int = 1              # conv: channel groups; groupnorm: its groups
    bias: bool = True
    activation: str = "none"     # conv rows: what follows the block's (norm and) conv
    rf: Optional[int] = None     # receptive field of one output unit, in input pixels
    jump: Optional[int] = None   # input pixels between neighbouring output units (effective stride)
    start: Optional[float] = None  # input position of the first output unit's centre
    macs: int = 0                # multiply-accumulates per image

    @property
    def symmetric(self) -> bool:
        """One padding all round, what nn.Conv2d's `padding=p` does. "same" on a non-square input can
        pad each axis evenly but by different amounts (8×11, k 3, s 3: rows 0, columns 1 each side)."""
        return len({side for axis in self.pads for side in axis}) == 1

    @property
    def memory(self) -> int:
        """Bytes of this layer's output for one image (what the backward pass keeps)."""
        return math.prod(self.out_shape) * BYTES_PER_VALUE

    @property
    def zeros_padding_extra(self) -> Tuple[int, Tuple[int, int], int]:
        """convT rows, the tutorial's view: zeros inserted between inputs, padding p' (before,
        after) and the extra a, so that a stride-1 convolution gives this row's output."""
        k_eff = self.dilation * (self.kernel - 1) + 1
        a = self.output_padding[0]
        before = k_eff - 1 - self.padding
        return self.stride - 1, (before, before), a


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


def _window(block: str, kind: str, i: int, k: int, s: int, pads: Tuple[int, int], d: int = 1) -> Tuple[int, str]:
    """Output size of a conv/pool window along one axis, or ShapeError with the worked formula."""
    before, after = pads
    k_text = str(k) if d == 1 else f"{d}·({k} − 1) − 1"
    if before == after:
        expr = f"⌊({i} + 2·{before} − {k_text})/{s}⌋ + 1"
    else:
        expr = f"⌊({i} + {before} + {after} − {k_text})/{s}⌋ + 1"
    k_eff = effective_kernel(k, d)
    o = (i + before + after - k_eff) // s + 1
    if o < 1:
        span = f"{k}×{k} kernel" if d == 1 else f"{k}×{k} kernel dilated by {d} (spanning {k_eff})"
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


def _conv_stack(model: Any) -> List[Layer]:
    c, h, w = model.input_shape
    r, j, start = 1, 1, 0.0  # receptive field, jump, centre of the first unit (input pixels)
    layers: List[Layer] = []
    for n, b in enumerate(resolve_blocks(model), start=1):
        name = f"block{n}"
        k, s, d, g = b.kernel_size, b.stride, b.dilation, b.groups
        if c % g or b.channels % g:
            raise SettingsError(_block_key(model, n, "groups"), g,
                                f"{name} conv has {c} input and {b.channels} output channels; groups must divide "
                                f"both: {', '.join(map(str, _divisors(c, b.channels)))}")
        if b.norm == "group" and b.channels % b.norm_groups:
            raise SettingsError(_block_key(model, n, "norm_groups"), b.norm_groups,
                                f"{name} has {b.channels} channels; norm_groups must divide them: "
                                f"{', '.join(map(str, _divisors(b.channels)))}")
        k_eff = effective_kernel(k, d)
        ph, pw = _pads_for(b.padding, h, k_eff, s), _pads_for(b.padding, w, k_eff, s)
        try:
            oh, formula = _window(name, "conv", h, k, s, ph, d)
            ow, _ = _window(name, "conv", w, k, s, pw, d)
        except ShapeError as e:
            e.block = n
            raise
        bias = b.norm == "none" if b.bias == "auto" else bool(b.bias)
        params = b.channels * (c // g) * k * k + (b.channels if bias else 0)
        start, r, j = start + ((k_eff - 1) / 2 - ph[0]) * j, r + (k_eff - 1) * j, j * s
        layers.append(Layer(name, "conv", (c, h, w), (b.channels, oh, ow), params, k, s,
                            b.padding if b.padding in ("same", "valid") else int(b.padding),
                            (ph, pw), formula=formula, dilation=d, groups=g, bias=bias, activation=b.activation,
                            rf=r, jump=j, start=start, macs=b.channels * oh * ow * (c // g) * k * k))
        c, h, w = b.channels, oh, ow
        pool_first = getattr(model, "pool_first", False) and b.pool != "none"
        norm = None if b.norm == "none" else Layer(name, f"{b.norm}norm", (c, h, w), (c, h, w), 2 * c,
                                                     groups=b.norm_groups if b.norm == "group" else 1)
        if norm and not pool_first:
            layers.append(replace(norm, rf=r, jump=j, start=start))
        if b.pool == "none":
            continue
        pk, ps, pp = b.pool_kernel, b.pool_stride, b.pool_padding
        kind = f"{b.pool}pool"
        if 2 * pp > pk:
            error = ShapeError(f"{name} {kind}: padding {pp} is more than half the {pk}×{pk} window "
                               f"(PyTorch needs p ≤ k/2 = {pk / 2:g}).")
            error.block = n
            raise error
        try:
            oh, formula = _window(name, kind, h, pk, ps, (pp, pp))
            ow, _ = _window(name, kind, w, pk, ps, (pp, pp))
        except ShapeError as e:
            e.block = n
            raise
        start, r, j = start + ((pk - 1) / 2 - pp) * j, r + (pk - 1) * j, j * ps
        layers.append(Layer(name, kind, (c, h, w), (c, oh, ow), 0, pk, ps, pp,
                            ((pp, pp), (pp, pp)), formula=formula, rf=r, jump=j, start=start))
        h, w = oh, ow
        if norm and pool_first:  # the norm (and the activation) work on a quarter of the values
            layers.append(replace(norm, in_shape=(c, h, w), out_shape=(c, h, w), rf=r, jump=j, start=start))
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
    """Transposed convolutions that undo each encoder layer's geometry, exactly.

    For a layer that took size i to o with kernel k (dilation d, k_eff = d(k − 1) + 1), stride s
    and pads (before, after), the transposed convolution with padding `before` gives
    s(o − 1) + a + k_eff − 2·before; the output padding a = i + 2·before − k_eff − s(o − 1) lies
    in [0, s) whenever the pads are equal. For the unequal pads of "same", it runs unpadded,
    adds a = (i + before + after) − (s(o − 1) + k_eff), and crops `before` from the front.
    """
    layers = []
    windows = [l for l in encoder if l.kind == "conv" or l.kind.endswith("pool")]
    for n, enc in enumerate(reversed(windows), start=1):
        (c_in, h_in, w_in), (c_out, h_out, w_out) = enc.in_shape, enc.out_shape
        k, s, d = enc.kernel, enc.stride, enc.dilation
        k_eff = effective_kernel(k, d)
        pad = enc.pads[0][0] if enc.symmetric else 0
        out_pad, crop = [], []
        for i, o, (before, after) in ((h_in, h_out, enc.pads[0]), (w_in, w_out, enc.pads[1])):
            if enc.symmetric:
                out_pad.append(i + 2 * pad - k_eff - s * (o - 1))
                crop.append(0)
            else:
                out_pad.append(i + before + after - k_eff - s * (o - 1))
                crop.append(before)
        size = transposed_out(h_out, k, s, pad, out_pad[0], d)
        formula = f"{s}·({h_out} − 1) + {out_pad[0]} + {k_eff} − 2·{pad} = {size}"
        if not enc.symmetric:
            formula += f", cropped to {h_in}"
        params = c_out * c_in * k * k + c_in
        layers.append(Layer(f"decoder{n}", "convT", (c_out, h_out, w_out), (c_in, h_in, w_in), params,
                            k, s, pad, ((pad, pad), (pad, pad)), tuple(out_pad),
                            None if enc.symmetric else tuple(crop), formula, dilation=d,
                            macs=c_out * h_out * w_out * c_in * k * k))
    return layers


def plan(model: Any) -> List[Layer]:
    """The shape table of a model: encoder blocks, then the classifier head or the decoder."""
    encoder = _conv_stack(model)
    from cnnexp.core.catalogue import TASKS

    if TASKS[model.task].decoder:
        return encoder + _mirror(encoder)
    return encoder + _classifier_head(model, encoder[-1].out_shape)


def receptive_box(layer: Layer, height: int, width: int) -> Tuple[float, float, float, float]:
    """The input pixels (x0, y0, x1, y1), clipped to the image, that the centre output unit of
    `layer` sees: its rf pixels around the centre the start/jump recursion gives."""
    (oh, ow), half = layer.out_shape[1:], (layer.rf - 1) / 2
    cy, cx = layer.start + (oh // 2) * layer.jump, layer.start + (ow // 2) * layer.jump
    return max(cx - half, 0), max(cy - half, 0), min(cx + half + 1, width), min(cy + half + 1, height)


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
    if 2 * blocks[n].pool_padding > blocks[n].pool_kernel:
        first.append((_block_key(model, block, "pool_padding"), blocks[n].pool_kernel // 2))
    for key, smaller in (("stride", 1), ("dilation", 1)):
        if any(getattr(b, key) > 1 for b in blocks[: block]):
            if getattr(model, key, None) is not None:
                first.append((f"model.{key}", smaller))
            else:
                first += [(f"model.blocks.{i}.{key}", smaller) for i in range(block - 1, -1, -1)
                          if getattr(blocks[i], key) > 1]
    k = blocks[n].kernel_size
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
