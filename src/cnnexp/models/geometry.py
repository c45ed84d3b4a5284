"""Shape arithmetic: the textbook formulas, worked layer by layer before any tensor exists.

    convolution / pooling:    o  = ⌊(i + 2p − k) / s⌋ + 1
    transposed convolution:   o' = s(i' − 1) + a + k − 2p        (a: output padding, a < s)
    padding "valid":          p = 0
    padding "same":           o = ⌈i / s⌉; the total padding max((o − 1)s + k − i, 0) is split
                              left = total // 2, right = the rest (TensorFlow's rule, which also
                              works for stride > 1, where PyTorch's own padding="same" refuses)

`plan(model)` turns the model settings into a list of `Layer` rows — the shape table — and
raises `ShapeError` naming the layer and the numbers when a setting cannot work. The networks
are built from the same rows, so the table and the tensors cannot disagree. Pure Python: it
runs in the settings check, before torch is imported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, List, Optional, Tuple

Shape = Tuple[int, ...]  # (C, H, W) or (features,)


class ShapeError(ValueError):
    """A layer whose output cannot exist. str() names the layer and the formula."""


@dataclass(frozen=True)
class Layer:
    block: str                   # block1 … blockN, head, decoder1 …
    kind: str                    # conv, maxpool, avgpool, l2pool, convT, flatten, linear
    in_shape: Shape
    out_shape: Shape
    params: int = 0
    kernel: Optional[int] = None
    stride: Optional[int] = None
    padding: Any = None          # int, or "same" with the pads below
    pads: Tuple[Tuple[int, int], Tuple[int, int]] = ((0, 0), (0, 0))  # (top, bottom), (left, right)
    output_padding: Tuple[int, int] = (0, 0)
    crop: Optional[Tuple[int, int]] = None  # convT mirroring an asymmetric "same": rows/cols dropped in front
    formula: str = ""            # the worked formula for the height, when it is worth showing

    @property
    def symmetric(self) -> bool:
        return all(a == b for a, b in self.pads)


# ------------------------------------------------------------------ the formulas, one number each
def conv_out(i: int, k: int, s: int, p: int) -> int:
    """o = ⌊(i + 2p − k)/s⌋ + 1 (convolution and pooling, symmetric padding p)."""
    return (i + 2 * p - k) // s + 1


def same_pads(i: int, k: int, s: int) -> Tuple[int, int]:
    """Padding (before, after) that makes o = ⌈i/s⌉."""
    total = max((math.ceil(i / s) - 1) * s + k - i, 0)
    return total // 2, total - total // 2


def transposed_out(i: int, k: int, s: int, p: int, a: int = 0) -> int:
    """o' = s(i' − 1) + a + k − 2p."""
    return s * (i - 1) + a + k - 2 * p


def _num(n: int) -> str:
    return str(n).replace("-", "−")


def _pads_for(padding: Any, i: int, k: int, s: int) -> Tuple[int, int]:
    if padding == "valid":
        return 0, 0
    if padding == "same":
        return same_pads(i, k, s)
    return int(padding), int(padding)


def _window(block: str, kind: str, i: int, k: int, s: int, pads: Tuple[int, int]) -> Tuple[int, str]:
    """Output size of a conv/pool window along one axis, or ShapeError with the worked formula."""
    before, after = pads
    if before == after:
        expr = f"⌊({i} + 2·{before} − {k})/{s}⌋ + 1"
    else:
        expr = f"⌊({i} + {before} + {after} − {k})/{s}⌋ + 1"
    o = (i + before + after - k) // s + 1
    if o < 1:
        raise ShapeError(
            f"{block} {kind}: {expr} = {_num(o)} < 1 — the {k}×{k} kernel is larger than its "
            f"padded input ({i} + {before + after}). Use a smaller kernel_size or stride, more "
            f"padding, or fewer blocks.")
    return o, f"{expr} = {o}"


# ------------------------------------------------------------------ settings → blocks
def resolve_blocks(model: Any) -> List[Any]:
    """The conv blocks with the global shortcuts (model.kernel_size, …) applied to every block."""
    shortcuts = {"kernel_size": model.kernel_size, "stride": model.stride,
                 "padding": model.padding, "pool": model.pool}
    set_ = {k: v for k, v in shortcuts.items() if v is not None}
    return [replace(b, **set_) for b in model.blocks]


def _conv_stack(model: Any) -> List[Layer]:
    c, h, w = model.input_shape
    layers: List[Layer] = []
    for n, b in enumerate(resolve_blocks(model), start=1):
        name = f"block{n}"
        k, s = b.kernel_size, b.stride
        ph, pw = _pads_for(b.padding, h, k, s), _pads_for(b.padding, w, k, s)
        oh, formula = _window(name, "conv", h, k, s, ph)
        ow, _ = _window(name, "conv", w, k, s, pw)
        params = b.channels * (c * k * k) + b.channels
        layers.append(Layer(name, "conv", (c, h, w), (b.channels, oh, ow), params, k, s,
                            b.padding if b.padding in ("same", "valid") else int(b.padding),
                            (ph, pw), formula=formula))
        c, h, w = b.channels, oh, ow
        if b.pool == "none":
            continue
        pk, ps, pp = b.pool_kernel, b.pool_stride, b.pool_padding
        kind = f"{b.pool}pool"
        if 2 * pp > pk:
            raise ShapeError(
                f"{name} {kind}: padding {pp} is more than half the {pk}×{pk} window "
                f"(PyTorch needs p ≤ k/2 = {pk / 2:g}). Use pool_padding ≤ {pk // 2} or a larger pool_kernel.")
        oh, formula = _window(name, kind, h, pk, ps, (pp, pp))
        ow, _ = _window(name, kind, w, pk, ps, (pp, pp))
        layers.append(Layer(name, kind, (c, h, w), (c, oh, ow), 0, pk, ps, pp,
                            ((pp, pp), (pp, pp)), formula=formula))
        h, w = oh, ow
    return layers


def _classifier_head(model: Any, features: Shape) -> List[Layer]:
    flat = math.prod(features)
    layers = [Layer("head", "flatten", features, (flat,))]
    width = flat
    for hidden in list(model.head.hidden) + [model.num_classes]:
        layers.append(Layer("head", "linear", (width,), (hidden,), width * hidden + hidden))
        width = hidden
    return layers


def _mirror(encoder: List[Layer]) -> List[Layer]:
    """Transposed convolutions that undo each encoder layer's geometry, exactly.

    For a layer that took size i to o with kernel k, stride s and pads (before, after), the
    transposed convolution with padding `before` gives s(o − 1) + a + k − 2·before; the output
    padding a = i + 2·before − k − s(o − 1) lies in [0, s) whenever the pads are equal. For the
    unequal pads of "same", it runs unpadded, adds a = (i + before + after) − (s(o − 1) + k),
    and crops `before` from the front.
    """
    layers = []
    for n, enc in enumerate(reversed(encoder), start=1):
        (c_in, h_in, w_in), (c_out, h_out, w_out) = enc.in_shape, enc.out_shape
        k, s = enc.kernel, enc.stride
        pad = enc.pads[0][0] if enc.symmetric else 0
        out_pad, crop = [], []
        for i, o, (before, after) in ((h_in, h_out, enc.pads[0]), (w_in, w_out, enc.pads[1])):
            if enc.symmetric:
                out_pad.append(i + 2 * pad - k - s * (o - 1))
                crop.append(0)
            else:
                out_pad.append(i + before + after - k - s * (o - 1))
                crop.append(before)
        formula = f"{s}·({h_out} − 1) + {out_pad[0]} + {k} − 2·{pad} = {transposed_out(h_out, k, s, pad, out_pad[0])}"
        if not enc.symmetric:
            formula += f", cropped to {h_in}"
        params = c_out * c_in * k * k + c_in
        layers.append(Layer(f"decoder{n}", "convT", (c_out, h_out, w_out), (c_in, h_in, w_in), params,
                            k, s, pad, ((pad, pad), (pad, pad)), tuple(out_pad),
                            None if enc.symmetric else tuple(crop), formula))
    return layers


def plan(model: Any) -> List[Layer]:
    """The shape table of a model: encoder blocks, then the classifier head or the decoder."""
    encoder = _conv_stack(model)
    if model.task == "reconstruction":
        return encoder + _mirror(encoder)
    return encoder + _classifier_head(model, encoder[-1].out_shape)


def total_params(layers: List[Layer]) -> int:
    return sum(layer.params for layer in layers)
