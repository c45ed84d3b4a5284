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

Every picture is a grid of rows and columns. An image's layer draws its height and width; a
series' layer draws one row, the kernel walking along the sequence (its first MAX_STEPS steps
when it is longer); a volume's or clip's layer draws the height×width slices of one depth, and
its heading says how many depth slices the kernel spans (`_Axis`: what each drawn axis holds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from cnnexp.arithmetic.geometry import Layer, axes_text, effective_kernel, one

MAX_FRAMES = 64  # positions drawn per picture; further rows of positions are summarised
MAX_STEPS = 32   # steps of a series drawn: the kernel walks the rest the same way

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
    dims: int = 2                 # the layer's spatial axes: 1 draws one row (a series), 3 one depth's slice
    steps_cut: int = 0            # a series: its steps past MAX_STEPS, not drawn

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


@dataclass(frozen=True)
class _Axis:
    """One drawn axis of a layer: its input size, window, padding, a convT's extra and crop."""

    size: int
    k: int = 1
    s: int = 1
    d: int = 1
    pads: Tuple[int, int] = (0, 0)
    a: int = 0                    # a transposed convolution's output padding
    crop: int = 0                 # … and what it crops in front (an asymmetric "same")
    kept: Optional[int] = None    # output kept after the crop; None: all of it
    out: int = 1


def _drawn_axes(layer: Layer) -> Tuple[_Axis, _Axis]:
    """The rows and columns a picture draws: height and width; for a series one row and its steps
    (the first MAX_STEPS); for a volume the height and width of one depth slice."""
    n = layer.dims
    ks, ss, ds = layer.axes("kernel"), layer.axes("stride"), layer.axes("dilation")
    a = layer.output_padding if layer.kind == "convT" else (0,) * n
    crop = layer.crop or (0,) * n
    axes = [_Axis(layer.in_shape[1 + i], ks[i], ss[i], ds[i], layer.pads[i], a[i], crop[i],
                  layer.out_shape[1 + i] if layer.crop else None, layer.out_shape[1 + i]) for i in range(n)]
    if n == 1:
        return _Axis(1), axes[0]
    return axes[-2], axes[-1]


def _steps(axis: _Axis) -> Tuple[int, bool]:
    """Input steps of a series drawn, and whether that is fewer than it has."""
    shown = min(axis.size, MAX_STEPS)
    return shown, shown < axis.size


def _slide(name_: str, heading: str, rows, cols, k, d, s, formula, crop: Tuple[int, int] = (0, 0),
           kept: Optional[Tuple[int, int]] = None, dims: int = 2, steps_cut: int = 0) -> Slide:
    """Walk the kernel over the drawn grid, row by row, as far as it fits. k, d, s: one value, or
    (rows, columns)."""
    (kr, kc), (dr, dc), (sr, sc) = (v if isinstance(v, tuple) else (v, v) for v in (k, d, s))
    out_h = len(range(0, len(rows) - effective_kernel(kr, dr) + 1, sr))
    out_w = len(range(0, len(cols) - effective_kernel(kc, dc) + 1, sc))
    shown = max(1, min(out_h, MAX_FRAMES // max(out_w, 1)))
    frames = tuple(Frame((r, c), tuple((r * sr + i * dr, c * sc + j * dc) for i in range(kr) for j in range(kc)))
                   for r in range(shown) for c in range(out_w))
    kept = kept or (out_h, out_w)
    keep = ((crop[0], crop[0] + kept[0]), (crop[1], crop[1] + kept[1]))
    return Slide(name_, heading, tuple(rows), tuple(cols), k, d, s, (out_h, out_w), frames, out_h - shown,
                 keep, tuple(formula), dims, steps_cut)


def _pads_text(layer: Layer) -> str:
    pairs = list(dict.fromkeys(layer.pads))
    if layer.symmetric:
        return f" ({layer.pads[0][0]})"
    if len(pairs) == 1:
        return f" ({pairs[0][0]} before, {pairs[0][1]} after)"
    return f" ({'; '.join(f'{b},{a}' for b, a in layer.pads)})"


def _describe(layer: Layer) -> str:
    shapes = f"{'×'.join(map(str, layer.in_shape))} → {'×'.join(map(str, layer.out_shape))}"
    k, s = "×".join(map(str, layer.axes("kernel"))), axes_text(layer.stride)
    if layer.kind.endswith("pool"):
        what = {"maxpool": "max", "avgpool": "average", "l2pool": "L2"}[layer.kind]
        return f"{layer.block} {what} pool: window {k}, stride {s}, padding {layer.pads[0][0]}   {shapes}{_more(layer)}"
    extra = f", dilation {axes_text(layer.dilation)}" if max(layer.axes("dilation")) > 1 else ""
    extra += f", groups {layer.groups}" if layer.groups > 1 else ""
    padding = layer.padding
    if padding in ("same", "valid"):
        padding += _pads_text(layer)
    return f"{layer.block} {layer.kind}: kernel {k}, stride {s}, padding {axes_text(padding)}{extra}   {shapes}{_more(layer)}"


def _more(layer: Layer) -> str:
    """What a picture of a series or a volume leaves out, in words."""
    if layer.dims == 1:
        shown, cut = _steps(_drawn_axes(layer)[1])
        return f" — the first {shown} of {layer.in_shape[1]} steps drawn" if cut else ""
    if layer.dims == 3:
        (k, *_), (s, *_), (d, *_) = layer.axes("kernel"), layer.axes("stride"), layer.axes("dilation")
        span = f"{k} depth slices" + (f" {d} apart" if d > 1 else "")
        return f" — one depth slice's height×width drawn: the kernel spans {span}, stepping {s} in depth"
    return ""


def _axis_kinds(axis: _Axis, cut: bool = False) -> Tuple[str, ...]:
    """Padding, input cells, padding along one drawn axis (a long series cut after MAX_STEPS)."""
    before, after = axis.pads
    size = _steps(axis)[0] if cut else axis.size
    return ("pad",) * before + ("in",) * size + ("pad",) * (0 if size < axis.size else after)


def window(layer: Layer) -> Slide:
    """A convolution or pooling layer: its input with the padding cells, the window sliding."""
    rows, cols = _drawn_axes(layer)
    return _slide(name(layer), _describe(layer), _axis_kinds(rows), _axis_kinds(cols, layer.dims == 1),
                  one((rows.k, cols.k)), one((rows.d, cols.d)), one((rows.s, cols.s)),
                  [f"o = {layer.formula}"], dims=layer.dims, steps_cut=cols.size - _steps(cols)[0] if layer.dims == 1 else 0)


def _direct_axis(i: int, zeros: int, before: int, after: int, a: int) -> Tuple[str, ...]:
    inputs = ("in",) + (("zero",) * zeros + ("in",)) * (i - 1)
    return ("pad",) * before + inputs + ("pad",) * after + ("extra",) * a


def _direct_of(axis: _Axis, p: int, steps: Optional[int] = None) -> Tuple[str, ...]:
    """One axis of a transposed convolution's direct view (p′ = k_eff − 1 − p each side)."""
    if axis.size == 1 and axis.k == 1:  # the one row of a series
        return ("in",)
    before = effective_kernel(axis.k, axis.d) - 1 - p
    kinds = _direct_axis(steps or axis.size, axis.s - 1, before, before, axis.a)
    return kinds if steps is None or steps == axis.size else kinds[: before + steps + (steps - 1) * (axis.s - 1)]


def direct(layer: Layer, note: str) -> Slide:
    """A transposed convolution as the tutorial derives it: a stride-1 convolution over its input
    with s − 1 zeros inserted between cells, p′ padding cells each side and the extra a."""
    zeros, (before, _), _ = layer.zeros_padding_extra
    rows, cols = _drawn_axes(layer)
    steps = _steps(cols)[0] if layer.dims == 1 else None
    grid_rows, grid_cols = _direct_of(rows, layer.padding), _direct_of(cols, layer.padding, steps)
    crop, kept = ((rows.crop, cols.crop), (rows.kept or rows.out, cols.kept or cols.out)) if layer.crop else ((0, 0), None)
    a = cols.a if layer.dims == 1 else rows.a
    heading = (f"{layer.block} convT as a direct convolution: {zeros} zero(s) between inputs, "
               f"p′ = {before}, a = {a}, stride 1{_more(layer)}")
    return _slide(name(layer), heading, grid_rows, grid_cols, one((rows.k, cols.k)), one((rows.d, cols.d)), 1,
                  [f"o′ = {layer.formula}", f"as a direct convolution: {note}"], crop, kept, layer.dims,
                  cols.size - steps if steps else 0)


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
    rows, cols = _drawn_axes(layer)
    p = layer.padding
    h, w = rows.size, _steps(cols)[0] if layer.dims == 1 else cols.size
    shown = max(1, min(h, MAX_FRAMES // w))
    stamps = [Frame((m, n), tuple((m * rows.s + i * rows.d, n * cols.s + j * cols.d)
                                  for i in range(rows.k) for j in range(cols.k)))
              for m in range(h) for n in range(w)]
    full_h = max(r for f in stamps for r, _ in f.taps) + 1
    full_w = max(c for f in stamps for _, c in f.taps) + 1
    if layer.dims == 1:  # one row, never cut; a series drawn in part: its columns as stamped
        kinds_rows = ("out",)
        kinds_cols = _cut_axis(full_w, p, cols.a, cols.crop, cols.kept) if w == cols.size else ("out",) * full_w
    else:
        kinds_rows = _cut_axis(full_h, p, rows.a, rows.crop, rows.kept)
        kinds_cols = _cut_axis(full_w, p, cols.a, cols.crop, cols.kept)
    kernel = "×".join(map(str, layer.axes("kernel")))
    heading = (f"{layer.block} convT: each input stamps the {kernel} kernel, stride {axes_text(layer.stride)}; "
               f"padding {p} cut from each side{_more(layer)}")
    return Scatter(name(layer), heading, (h, w), kinds_rows, kinds_cols, tuple(stamps[: shown * w]), h - shown)


def groups(layer: Layer) -> Groups:
    """Which input channels each output channel reads: its group's share, C_in / g of them."""
    c_in, c_out, g = layer.in_shape[0], layer.out_shape[0], layer.groups
    per_in, per_out = c_in // g, c_out // g
    reads = tuple(((o // per_out) * per_in, (o // per_out + 1) * per_in) for o in range(c_out))
    heading = (f"{layer.block} conv, groups {g}: each of {c_out} output channels reads {per_in} of "
               f"{c_in} input channels" + (" (depthwise)" if g == c_in else ""))
    return Groups(f"{name(layer)}_groups", heading, c_in, c_out, reads)
