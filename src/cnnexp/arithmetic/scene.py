"""What the convolution-arithmetic pictures show, as data: cells, kernel positions, channel groups.

Every picture is built here from one row of the shape plan (`geometry.Layer`) before a pixel is
drawn, so what a picture holds can be counted: the padding cells laid out, the zeros inserted
between a transposed convolution's inputs, the positions the kernel visits. The positions are
found by walking the kernel over the drawn grid (as far as it fits), not copied from the plan,
so the tests can hold the picture against the arithmetic. Pure Python: no torch, no pixels.

    Slide    a window sliding over a grid: convolution, pooling, and a transposed
             convolution's equivalent direct convolution (zeros inserted, padding p′, extra a)
    Scatter  a transposed convolution as defined: each input cell stamps the kernel onto the
             output with stride s, then p rows and columns are cut from each side (a added back)
    Groups   which input channels each output channel of a grouped convolution reads
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from cnnexp.arithmetic.geometry import Layer, effective_kernel

MAX_FRAMES = 64  # positions drawn per picture; further rows of positions are summarised

Cell = Tuple[int, int]  # (row, column) in the grid as drawn, padding included


@dataclass(frozen=True)
class Frame:
    """One kernel position: the cell it fills and the cells its taps cover (dilation gaps between)."""

    cell: Cell
    taps: Tuple[Cell, ...]


@dataclass(frozen=True)
class Slide:
    name: str                     # file and TensorBoard name: block1_conv, decoder2_convT
    heading: str
    rows: Tuple[str, ...]         # each input row as drawn: "in", "pad", "zero" (inserted), "extra" (a)
    cols: Tuple[str, ...]
    kernel: int
    dilation: int
    stride: int
    out: Tuple[int, int]          # output positions: rows, columns
    frames: Tuple[Frame, ...]     # the positions drawn, row by row
    hidden_rows: int              # rows of positions not drawn ("… N more rows of positions")
    keep: Tuple[Tuple[int, int], Tuple[int, int]]  # output rows, columns kept [from, to): a crop drops the rest
    formula: Tuple[str, ...]

    def pads(self, axis: int = 0) -> Tuple[int, int]:
        """Padding cells (before, after) along rows (0) or columns (1), counted off the drawn grid."""
        kinds = self.rows if axis == 0 else self.cols
        tail = kinds[::-1][_run(kinds[::-1], "extra"):]  # a transposed view's extra a lies past its padding
        return _run(kinds, "pad"), _run(tail, "pad")

    def zeros_between(self, axis: int = 0) -> List[int]:
        """Inserted zero cells between each pair of neighbouring input cells."""
        kinds = self.rows if axis == 0 else self.cols
        inputs = [i for i, k in enumerate(kinds) if k == "in"]
        return [sum(kinds[i] == "zero" for i in range(a + 1, b)) for a, b in zip(inputs, inputs[1:])]

    @property
    def kept(self) -> Tuple[int, int]:
        (r0, r1), (c0, c1) = self.keep
        return r1 - r0, c1 - c0


@dataclass(frozen=True)
class Scatter:
    name: str
    heading: str
    inputs: Tuple[int, int]
    rows: Tuple[str, ...]         # each output row as drawn: "out" (kept), "cut" (by padding p), "crop"
    cols: Tuple[str, ...]
    frames: Tuple[Frame, ...]     # cell: the input cell; taps: the output cells its stamp covers
    hidden_rows: int

    @property
    def out(self) -> Tuple[int, int]:
        return self.rows.count("out"), self.cols.count("out")

    def origin(self) -> Cell:
        """Where the kept output starts in the drawn rows and columns."""
        return self.rows.index("out"), self.cols.index("out")


@dataclass(frozen=True)
class Groups:
    name: str
    heading: str
    inputs: int
    outputs: int
    reads: Tuple[Tuple[int, int], ...]  # per output channel: the input channels [from, to) it reads


def name(layer: Layer) -> str:
    return f"{layer.block}_{layer.kind}"


def drawable(layer: Layer) -> bool:
    return layer.kind in ("conv", "convT") or layer.kind.endswith("pool")


# ------------------------------------------------------------------ building the scenes
def _run(kinds, kind: str) -> int:
    n = 0
    while n < len(kinds) and kinds[n] == kind:
        n += 1
    return n


def _slide(name_: str, heading: str, rows, cols, k: int, d: int, s: int, formula,
           crop: Tuple[int, int] = (0, 0), kept: Optional[Tuple[int, int]] = None) -> Slide:
    """Walk the kernel over the drawn grid, row by row, as far as it fits."""
    span = effective_kernel(k, d)
    out_h = len(range(0, len(rows) - span + 1, s))
    out_w = len(range(0, len(cols) - span + 1, s))
    shown = max(1, min(out_h, MAX_FRAMES // max(out_w, 1)))
    frames = tuple(Frame((r, c), tuple((r * s + i * d, c * s + j * d) for i in range(k) for j in range(k)))
                   for r in range(shown) for c in range(out_w))
    kept = kept or (out_h, out_w)
    keep = ((crop[0], crop[0] + kept[0]), (crop[1], crop[1] + kept[1]))
    return Slide(name_, heading, tuple(rows), tuple(cols), k, d, s, (out_h, out_w), frames, out_h - shown,
                 keep, tuple(formula))


def _describe(layer: Layer) -> str:
    shapes = f"{'×'.join(map(str, layer.in_shape))} → {'×'.join(map(str, layer.out_shape))}"
    k, s = layer.kernel, layer.stride
    if layer.kind.endswith("pool"):
        what = {"maxpool": "max", "avgpool": "average", "l2pool": "L2"}[layer.kind]
        return f"{layer.block} {what} pool: window {k}×{k}, stride {s}, padding {layer.pads[0][0]}   {shapes}"
    extra = f", dilation {layer.dilation}" if layer.dilation > 1 else ""
    extra += f", groups {layer.groups}" if layer.groups > 1 else ""
    padding = layer.padding
    if padding in ("same", "valid"):
        (top, bottom), (left, right) = layer.pads
        padding += f" ({top})" if layer.symmetric else f" ({top} before, {bottom} after)" if (top, bottom) == (left, right) else f" ({top},{bottom}; {left},{right})"
    return f"{layer.block} {layer.kind}: kernel {k}×{k}, stride {s}, padding {padding}{extra}   {shapes}"


def window(layer: Layer) -> Slide:
    """A convolution or pooling layer: its input with the padding cells, the window sliding."""
    (top, bottom), (left, right) = layer.pads
    _, h, w = layer.in_shape
    rows = ("pad",) * top + ("in",) * h + ("pad",) * bottom
    cols = ("pad",) * left + ("in",) * w + ("pad",) * right
    return _slide(name(layer), _describe(layer), rows, cols, layer.kernel, layer.dilation, layer.stride,
                  [f"o = {layer.formula}"])


def _direct_axis(i: int, zeros: int, before: int, after: int, a: int) -> Tuple[str, ...]:
    inputs = ("in",) + (("zero",) * zeros + ("in",)) * (i - 1)
    return ("pad",) * before + inputs + ("pad",) * after + ("extra",) * a


def direct(layer: Layer, note: str) -> Slide:
    """A transposed convolution as the tutorial derives it: a stride-1 convolution over its input
    with s − 1 zeros inserted between cells, p′ padding cells each side and the extra a."""
    zeros, (before, after), _ = layer.zeros_padding_extra
    (a_h, a_w), (_, h, w) = layer.output_padding, layer.in_shape
    rows, cols = _direct_axis(h, zeros, before, after, a_h), _direct_axis(w, zeros, before, after, a_w)
    crop, kept = (layer.crop, tuple(layer.out_shape[1:])) if layer.crop else ((0, 0), None)
    heading = (f"{layer.block} convT as a direct convolution: {zeros} zero(s) between inputs, "
               f"p′ = {before}, a = {a_h}, stride 1")
    return _slide(name(layer), heading, rows, cols, layer.kernel, layer.dilation, 1, [f"o′ = {layer.formula}", f"as a direct convolution: {note}"],
                  crop, kept)


def _cut_axis(full: int, p: int, a: int, crop: int, kept: Optional[int]) -> Tuple[str, ...]:
    """The stamped rows, p cut from each side, a added at the end, then the crop of an asymmetric
    'same' (`kept` rows from `crop` on; None: no crop)."""
    size = full - 2 * p + a
    kept = size if kept is None else kept
    kinds = []
    for x in range(max(full, p + size)):
        y = x - p  # index in the transposed convolution's output
        kinds.append("cut" if y < 0 or y >= size else "out" if crop <= y < crop + kept else "crop")
    return tuple(kinds)


def scatter(layer: Layer) -> Scatter:
    """A transposed convolution as defined: input cell (m, n) adds the kernel times its value to
    the output cells (m·s + i·d, n·s + j·d); the output keeps what padding p leaves."""
    k, s, d, p = layer.kernel, layer.stride, layer.dilation, layer.padding
    _, h, w = layer.in_shape
    shown = max(1, min(h, MAX_FRAMES // w))
    stamps = [Frame((m, n), tuple((m * s + i * d, n * s + j * d) for i in range(k) for j in range(k)))
              for m in range(h) for n in range(w)]
    full_h = max(r for f in stamps for r, _ in f.taps) + 1
    full_w = max(c for f in stamps for _, c in f.taps) + 1
    crop, kept = (layer.crop, layer.out_shape[1:]) if layer.crop else ((0, 0), (None, None))
    rows = _cut_axis(full_h, p, layer.output_padding[0], crop[0], kept[0])
    cols = _cut_axis(full_w, p, layer.output_padding[1], crop[1], kept[1])
    heading = f"{layer.block} convT: each input stamps the {k}×{k} kernel, stride {s}; padding {p} cut from each side"
    return Scatter(name(layer), heading, (h, w), rows, cols, tuple(stamps[: shown * w]), h - shown)


def groups(layer: Layer) -> Groups:
    """Which input channels each output channel reads: its group's share, C_in / g of them."""
    c_in, c_out, g = layer.in_shape[0], layer.out_shape[0], layer.groups
    per_in, per_out = c_in // g, c_out // g
    reads = tuple(((o // per_out) * per_in, (o // per_out + 1) * per_in) for o in range(c_out))
    heading = (f"{layer.block} conv, groups {g}: each of {c_out} output channels reads {per_in} of "
               f"{c_in} input channels" + (" (depthwise)" if g == c_in else ""))
    return Groups(f"{name(layer)}_groups", heading, c_in, c_out, reads)
