"""The two panels a layer's pictures are made of, and the words around them: a sliding window
(the input grid with its padding, zeros and extra `a`, the output grid beside it) and a
transposed convolution's scatter (its input, and the output canvas it stamps onto).

Padding cells are white with a dashed edge (inserted zeros grey, the extra `a` orange), the
kernel's taps dark blue inside the outline of its footprint (dilation leaves gaps), the previous
position's outline orange (the stride), output cells green as they fill.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from cnnexp.arithmetic.canvas import COLOURS, GAP, Grid, grid_pair, pair_extent, put_text
from cnnexp.arithmetic.scene import Frame, Scatter, Slide

LEGEND = [("input", "in"), ("padding", "pad"), ("kernel tap", "tap"), ("previous position", "previous"),
          ("output being filled", "now"), ("filled", "done")]
LEGEND_T = [("input", "in"), ("inserted zero", "zero"), ("padding p′", "pad"), ("extra a", "extra"),
            ("kernel tap", "tap"), ("output being filled", "now"), ("cut by p", "cut"), ("cropped", "crop")]


# ------------------------------------------------------------------ a sliding window
def _cell_kind(row: str, col: str) -> str:
    for kind in ("extra", "pad", "zero"):
        if kind in (row, col):
            return kind
    return "in"


def _input_grid(draw, grid: Grid, rows, cols) -> None:
    for r, kr in enumerate(rows):
        for c, kc in enumerate(cols):
            kind = _cell_kind(kr, kc)
            small_pad = kind != "in" and grid.cell < 10  # too small for a dashed edge: a grey shade says it
            colour = COLOURS["small_pad"] if small_pad and kind == "pad" else COLOURS[kind]
            grid.fill(draw, r, c, colour, COLOURS["background"] if kind == "in" else COLOURS["edge"], dashed=kind != "in")


class SlidePanel:
    """The input grid (padding, zeros, extra) and the output grid beside it, for one Slide."""

    def __init__(self, slide: Slide, x: int, y: int, cell: int, gap: int = GAP):
        self.slide = slide
        self.input, self.output = grid_pair(x, y, (len(slide.rows), len(slide.cols)), slide.out, cell, gap)
        self.shown_rows = slide.out[0] - slide.hidden_rows

    @property
    def size(self) -> Tuple[int, int]:
        return pair_extent(self.input, self.output)

    def base(self, draw) -> None:
        s = self.slide
        put_text(draw, (self.input.x, self.input.y - 17), "input" + pads_label(s), 12)
        kept = "×".join(map(str, s.kept))
        label = f"output {kept}" if s.kept == s.out else f"output {'×'.join(map(str, s.out))}, kept {kept}"
        put_text(draw, (self.output.x, self.output.y - 17), label, 12)
        _input_grid(draw, self.input, s.rows, s.cols)
        (r0, r1), (c0, c1) = s.keep
        for r in range(self.shown_rows):
            for c in range(s.out[1]):
                colour = COLOURS["out"] if r0 <= r < r1 and c0 <= c < c1 else COLOURS["crop"]
                self.output.fill(draw, r, c, colour, COLOURS["out_edge"])
        if s.hidden_rows:  # drawn at scale, as one block: the rows of positions not drawn
            x0, y0, _, _ = self.output.box(self.shown_rows, 0)
            _, _, x1, y1 = self.output.box(s.out[0] - 1, s.out[1] - 1)
            draw.rectangle((x0, y0, x1, y1), fill=COLOURS["hidden"], outline=COLOURS["out_edge"])
            if self.output.cell >= 8 and y1 - y0 >= 40 and x1 - x0 >= 110:
                put_text(draw, (x0 + 6, y0 + 6), f"… {s.hidden_rows} more rows", 12, COLOURS["edge"])
                put_text(draw, (x0 + 6, y0 + 22), "of positions", 12, COLOURS["edge"])

    def frame(self, draw, n: int, frames: Sequence[Frame]) -> None:
        """Position n: the kernel's taps and footprint, the previous footprint, the output cell."""
        f = frames[n]
        inset = max(1, self.input.cell // 5)
        for r, c in f.taps:
            draw.rectangle(self.input.box(r, c, inset), fill=COLOURS["tap"])
        if n > 0:
            self.input.outline(draw, frames[n - 1].taps, COLOURS["previous"], 1)
        self.input.outline(draw, f.taps, COLOURS["footprint"])
        self.output.fill(draw, *f.cell, COLOURS["now"], COLOURS["out_edge"])

    def done(self, draw, f: Frame) -> None:
        self.output.fill(draw, *f.cell, COLOURS["done"], COLOURS["out_edge"])


def pads_label(s: Slide) -> str:
    """What the input grid holds besides the input: zeros between, padding (p, or p′ for a
    transposed convolution's direct view), the extra a."""
    (top, bottom), (left, right) = s.pads(0), s.pads(1)
    zeros, extra = s.zeros_between(0), s.rows.count("extra")
    if s.dims == 1:  # a series: its one row holds no padding; the steps do
        (top, bottom), zeros, extra = (left, right), s.zeros_between(1), s.cols.count("extra")
    p = "p′" if any(zeros) or extra else "p"
    parts = [f"{zeros[0]} zero(s) between"] if any(zeros) else []
    if (top, bottom) != (left, right):
        parts.append(f"{p} = {top},{bottom} rows, {left},{right} cols")
    elif top != bottom:
        parts.append(f"{p} = {top} before, {bottom} after")
    elif top:
        parts.append(f"{p} = {top}")
    if extra:
        parts.append(f"a = {extra}")
    if s.steps_cut:  # the after-padding lies past the steps drawn
        parts = [part for part in parts if not part.startswith(p)] + [f"{p} = {top} in front", f"+{s.steps_cut} steps"]
    return f" ({', '.join(parts)})" if parts else ""


def caption(slide: Slide, f: Frame) -> str:
    """Which cells the kernel covers: input rows and columns (padding is below 0 and past the
    end), or for a transposed convolution's direct view, those of the grid as drawn."""
    direct = "zero" in slide.rows or "extra" in slide.rows
    top, left = (0, 0) if direct else (slide.pads(0)[0], slide.pads(1)[0])
    rows, cols = [r - top for r, _ in f.taps], [c - left for _, c in f.taps]
    where = "grid" if direct else "input"
    if slide.dims == 1:  # a series: the kernel walks the steps of one row
        direct, left = "zero" in slide.cols or "extra" in slide.cols, slide.pads(1)[0]
        cols = [c - (0 if direct else left) for _, c in f.taps]
        return (f"output {f.cell[1]} ← {'grid' if direct else 'input'} steps {min(cols)}…{max(cols)}"
                f"   (stride {_columns(slide.stride)}, dilation {_columns(slide.dilation)})").replace("-", "−")
    return (f"output ({f.cell[0]}, {f.cell[1]}) ← {where} rows {min(rows)}…{max(rows)}, cols {min(cols)}…{max(cols)}"
            f"   (stride {slide.stride}, dilation {slide.dilation})").replace("-", "−")


def _columns(value):
    """A slide's stride or dilation along its columns: one value, or (rows, columns)."""
    return value[1] if isinstance(value, tuple) else value


def hidden_note(slide: Slide) -> Optional[str]:
    """The line under a slide whose later rows of positions are not drawn; None when all are."""
    if not slide.hidden_rows:
        return None
    total = slide.out[0] * slide.out[1]
    return (f"… {slide.hidden_rows} more rows of positions ({slide.hidden_rows * slide.out[1]} of {total}), "
            "not drawn: the kernel goes on the same way")


def legend_of(slide: Slide, scatter: Optional[Scatter]):
    if scatter is not None:
        return LEGEND_T
    return [("window" if kind == "tap" and " pool:" in slide.heading else label, kind) for label, kind in LEGEND]


# ------------------------------------------------------------------ the transposed view beside it
class ScatterPanel:
    """The transposed convolution's input and its output canvas (cut and cropped cells shaded)."""

    def __init__(self, scatter: Scatter, x: int, y: int, cell: int, gap: int = GAP):
        self.scatter = scatter
        self.input, self.output = grid_pair(x, y, scatter.inputs, (len(scatter.rows), len(scatter.cols)), cell, gap)

    @property
    def size(self) -> Tuple[int, int]:
        return pair_extent(self.input, self.output)

    def base(self, draw) -> None:
        s = self.scatter
        put_text(draw, (self.input.x, self.input.y - 17), "input", 12)
        put_text(draw, (self.output.x, self.output.y - 17), f"output {'×'.join(map(str, s.out))} (grey: cut by p)", 12)
        for r in range(s.inputs[0]):
            for c in range(s.inputs[1]):
                self.input.fill(draw, r, c, COLOURS["in"], COLOURS["background"])
        for r, kr in enumerate(s.rows):
            for c, kc in enumerate(s.cols):
                kind = "cut" if "cut" in (kr, kc) else "crop" if "crop" in (kr, kc) else "out"
                self.output.fill(draw, r, c, COLOURS[kind], COLOURS["out_edge"] if kind == "out" else COLOURS["edge"])

    def stamp(self, draw, f: Frame) -> None:
        """Input cell f.cell stamps the kernel onto the output cells f.taps."""
        self.input.fill(draw, *f.cell, COLOURS["tap"], COLOURS["background"])
        inset = max(1, self.output.cell // 5)
        for r, c in f.taps:
            draw.rectangle(self.output.box(r, c, inset), fill=COLOURS["tap"])
        self.output.outline(draw, f.taps, COLOURS["footprint"])


def inputs_read(slide: Slide, f: Frame) -> List[Tuple[int, int]]:
    """The transposed view's input cells under the direct view's taps (zeros and padding read nothing)."""
    index = lambda kinds: {x: n for n, x in enumerate(i for i, k in enumerate(kinds) if k == "in")}
    rows, cols = index(slide.rows), index(slide.cols)
    return [(rows[r], cols[c]) for r, c in f.taps if r in rows and c in cols]
