"""The scenes (`scene.py`) in pixels, with Pillow: an animated GIF and a still sheet per layer, the
channel groups, and the receptive fields over a digit.

The conv_arithmetic look: input cells blue, padding cells white with a dashed edge (inserted
zeros grey, the extra `a` orange), the kernel's taps dark blue inside the outline of its
footprint (dilation leaves gaps), the previous position's outline in orange (the stride), the
output cells green as they fill. Each picture's static part is drawn once and each frame adds
only the kernel, and frames are mapped onto one fixed palette: no per-frame quantising, which is
what keeps drawing all of cnn3's layers well under two seconds.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from PIL import Image, ImageDraw, ImageFont

from cnnexp.arithmetic.scene import Frame, Groups, Scatter, Slide

RGB = {
    "in": (169, 200, 232), "pad": (255, 255, 255), "zero": (235, 235, 235), "extra": (251, 221, 196),
    "edge": (120, 120, 120), "tap": (31, 78, 140), "footprint": (20, 40, 90), "previous": (230, 120, 40),
    "out": (255, 255, 255), "out_edge": (90, 160, 120), "done": (150, 215, 180), "now": (30, 132, 73),
    "cut": (225, 225, 225), "crop": (245, 235, 200), "hidden": (228, 228, 228), "text": (0, 0, 0),
    "background": (255, 255, 255), "small_pad": (215, 215, 215), "tile": (200, 200, 200),
}
GROUP_RGB = [(169, 200, 232), (150, 215, 180), (251, 205, 160), (210, 180, 225), (240, 170, 170), (200, 200, 140)]
GREYS = [(g, g, g) for g in range(0, 256, 15)]
PALETTE = [*RGB.values(), *GROUP_RGB, *GREYS]
COLOURS = {name: n for n, name in enumerate(RGB)}  # palette indices: a P-mode fill needs no colour lookup
GROUP_COLOURS = list(range(len(RGB), len(RGB) + len(GROUP_RGB)))
MARGIN, GAP, TILE_PAD = 14, 28, 5
FRAME_MS = 450


# ------------------------------------------------------------------ fonts and the palette
@functools.lru_cache(maxsize=None)
def font(size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans, which matplotlib (a dependency) ships: it has ⌊ ⌋ − · ′ …; found without
    importing matplotlib. Else Pillow's own font."""
    spec = importlib.util.find_spec("matplotlib")
    for base in (spec.submodule_search_locations or []) if spec else []:
        path = Path(base) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if path.is_file():
            return ImageFont.truetype(str(path), size, layout_engine=ImageFont.Layout.BASIC)  # plain text: the faster
    return ImageFont.load_default(size)


def _blank(size: Tuple[int, int]) -> Image.Image:
    """A white picture on the fixed palette: frames need no quantising (text is then drawn without
    antialiasing, which at these sizes reads as well)."""
    image = Image.new("P", size, COLOURS["background"])
    image.putpalette([v for rgb in PALETTE for v in rgb])
    return image


@functools.lru_cache(maxsize=None)
def _glyph(char: str, size: int) -> Tuple[Image.Image, float]:
    """One character as a 1-bit mask, and how far the pen then moves."""
    f = font(size)
    advance = f.getlength(char)
    mask = Image.new("1", (int(advance) + 2, size + size // 2 + 2))
    ImageDraw.Draw(mask).text((0, 0), char, font=f, fill=1)
    return mask, advance


def _text(draw: ImageDraw.ImageDraw, xy, text: str, size: int = 13, fill=COLOURS["text"]) -> None:
    """Text pasted glyph by glyph from a cache: a picture's many labels cost a third of drawing
    each afresh."""
    x, y = xy
    for char in text:
        mask, advance = _glyph(char, size)
        if char != " ":
            draw.im.paste(fill, (int(round(x)), int(y), int(round(x)) + mask.width, int(y) + mask.height), mask.im)
        x += advance


def _width(text: str, size: int = 13) -> int:
    return int(font(size).getlength(text)) + 1


def _dashed(draw: ImageDraw.ImageDraw, box, colour, dash: int = 3) -> None:
    x0, y0, x1, y1 = box
    for x in range(x0, x1, 2 * dash):
        draw.line((x, y0, min(x + dash, x1), y0), fill=colour)
        draw.line((x, y1, min(x + dash, x1), y1), fill=colour)
    for y in range(y0, y1, 2 * dash):
        draw.line((x0, y, x0, min(y + dash, y1)), fill=colour)
        draw.line((x1, y, x1, min(y + dash, y1)), fill=colour)


# ------------------------------------------------------------------ a grid of cells
class Grid:
    """A grid placed in a picture: rows × cols cells of `cell` pixels from (x, y)."""

    def __init__(self, x: int, y: int, rows: int, cols: int, cell: int):
        self.x, self.y, self.rows, self.cols, self.cell = x, y, rows, cols, cell

    @property
    def size(self) -> Tuple[int, int]:
        return self.cols * self.cell, self.rows * self.cell

    def box(self, r: int, c: int, inset: int = 0):
        x, y = self.x + c * self.cell, self.y + r * self.cell
        return x + inset, y + inset, x + self.cell - 1 - inset, y + self.cell - 1 - inset

    def fill(self, draw, r: int, c: int, colour, edge=None, dashed: bool = False) -> None:
        box = self.box(r, c)
        draw.rectangle(box, fill=colour)
        if edge is not None and self.cell >= 6:
            if dashed and self.cell >= 10:
                _dashed(draw, box, edge)
            else:
                draw.rectangle(box, outline=edge)

    def outline(self, draw, cells: Sequence[Tuple[int, int]], colour, width: int = 2) -> None:
        """The rectangle around `cells` (a kernel footprint: its taps and the gaps between)."""
        rows, cols = [r for r, _ in cells], [c for _, c in cells]
        x0, y0, _, _ = self.box(min(rows), min(cols))
        _, _, x1, y1 = self.box(max(rows), max(cols))
        draw.rectangle((x0 - 1, y0 - 1, x1 + 1, y1 + 1), outline=colour, width=width)


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


def _cell_size(cells: int, target: int, smallest: int, largest: int) -> int:
    return max(smallest, min(largest, target // max(cells, 1)))


def _pair(x: int, y: int, inputs: Tuple[int, int], outputs: Tuple[int, int], cell: int, gap: int) -> Tuple[Grid, Grid]:
    """An input grid and, `gap` pixels to its right, an output grid, each under an 18-px label."""
    first = Grid(x, y + 18, *inputs, cell)
    return first, Grid(x + first.size[0] + gap, y + 18, *outputs, cell)


def _extent(first: Grid, second: Grid) -> Tuple[int, int]:
    return second.x + second.size[0] - first.x, 18 + max(first.size[1], second.size[1])


# ------------------------------------------------------------------ a sliding window
class SlidePanel:
    """The input grid (padding, zeros, extra) and the output grid beside it, for one Slide."""

    def __init__(self, slide: Slide, x: int, y: int, cell: int, gap: int = GAP):
        self.slide = slide
        self.input, self.output = _pair(x, y, (len(slide.rows), len(slide.cols)), slide.out, cell, gap)
        self.shown_rows = slide.out[0] - slide.hidden_rows

    @property
    def size(self) -> Tuple[int, int]:
        return _extent(self.input, self.output)

    def base(self, draw) -> None:
        s = self.slide
        _text(draw, (self.input.x, self.input.y - 17), "input" + _pads_label(s), 12)
        kept = "×".join(map(str, s.kept))
        label = f"output {kept}" if s.kept == s.out else f"output {'×'.join(map(str, s.out))}, kept {kept}"
        _text(draw, (self.output.x, self.output.y - 17), label, 12)
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
                _text(draw, (x0 + 6, y0 + 6), f"… {s.hidden_rows} more rows", 12, COLOURS["edge"])
                _text(draw, (x0 + 6, y0 + 22), "of positions", 12, COLOURS["edge"])

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


def _pads_label(s: Slide) -> str:
    """What the input grid holds besides the input: zeros between, padding (p, or p′ for a
    transposed convolution's direct view), the extra a."""
    (top, bottom), (left, right) = s.pads(0), s.pads(1)
    zeros, extra = s.zeros_between(0), s.rows.count("extra")
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
    return f" ({', '.join(parts)})" if parts else ""


def _caption(slide: Slide, f: Frame) -> str:
    """Which cells the kernel covers: input rows and columns (padding is below 0 and past the
    end), or for a transposed convolution's direct view, those of the grid as drawn."""
    direct = "zero" in slide.rows or "extra" in slide.rows
    top, left = (0, 0) if direct else (slide.pads(0)[0], slide.pads(1)[0])
    rows, cols = [r - top for r, _ in f.taps], [c - left for _, c in f.taps]
    where = "grid" if direct else "input"
    return (f"output ({f.cell[0]}, {f.cell[1]}) ← {where} rows {min(rows)}…{max(rows)}, cols {min(cols)}…{max(cols)}"
            f"   (stride {slide.stride}, dilation {slide.dilation})").replace("-", "−")


def _summary(slide: Slide) -> Optional[str]:
    if not slide.hidden_rows:
        return None
    total = slide.out[0] * slide.out[1]
    return (f"… {slide.hidden_rows} more rows of positions ({slide.hidden_rows * slide.out[1]} of {total}), "
            "not drawn: the kernel goes on the same way")


# ------------------------------------------------------------------ the transposed view beside it
class ScatterPanel:
    """The transposed convolution's input and its output canvas (cut and cropped cells shaded)."""

    def __init__(self, scatter: Scatter, x: int, y: int, cell: int, gap: int = GAP):
        self.scatter = scatter
        self.input, self.output = _pair(x, y, scatter.inputs, (len(scatter.rows), len(scatter.cols)), cell, gap)

    @property
    def size(self) -> Tuple[int, int]:
        return _extent(self.input, self.output)

    def base(self, draw) -> None:
        s = self.scatter
        _text(draw, (self.input.x, self.input.y - 17), "input", 12)
        _text(draw, (self.output.x, self.output.y - 17), f"output {'×'.join(map(str, s.out))} (grey: cut by p)", 12)
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


def _inputs_read(slide: Slide, f: Frame) -> List[Tuple[int, int]]:
    """The transposed view's input cells under the direct view's taps (zeros and padding read nothing)."""
    index = lambda kinds: {x: n for n, x in enumerate(i for i, k in enumerate(kinds) if k == "in")}
    rows, cols = index(slide.rows), index(slide.cols)
    return [(rows[r], cols[c]) for r, c in f.taps if r in rows and c in cols]


# ------------------------------------------------------------------ pictures
def _footer(draw, x: int, y: int, lines: Sequence[str]) -> None:
    for line in lines:
        _text(draw, (x, y), line)
        y += 18


def _legend(draw, x: int, y: int, items: Sequence[Tuple[str, str]]) -> None:
    for label, kind in items:
        draw.rectangle((x, y + 2, x + 11, y + 13), fill=COLOURS[kind], outline=COLOURS["edge"])
        _text(draw, (x + 16, y), label, 12)
        x += 16 + _width(label, 12) + 14


LEGEND = [("input", "in"), ("padding", "pad"), ("kernel tap", "tap"), ("previous position", "previous"),
          ("output being filled", "now"), ("filled", "done")]
LEGEND_T = [("input", "in"), ("inserted zero", "zero"), ("padding p′", "pad"), ("extra a", "extra"),
            ("kernel tap", "tap"), ("output being filled", "now"), ("cut by p", "cut"), ("cropped", "crop")]


def _legend_of(slide: Slide, scatter: Optional[Scatter]):
    if scatter is not None:
        return LEGEND_T
    return [("window" if kind == "tap" and " pool:" in slide.heading else label, kind) for label, kind in LEGEND]


def _layout(heading: str, panels_w: int, panels_h: int, footer: Sequence[str], legend) -> Tuple[int, int, int]:
    """(width, height, y of the footer) of a picture: heading, caption line, panels, footer, legend."""
    legend_w = sum(16 + _width(label, 12) + 14 for label, _ in legend)
    width = 2 * MARGIN + max(panels_w, _width(heading, 14), legend_w, *(_width(l) for l in footer))
    footer_y = MARGIN + 44 + panels_h + 8
    return width, footer_y + 18 * len(footer) + 24 + MARGIN, footer_y


def animation(slide: Slide, scatter: Optional[Scatter] = None) -> List[Image.Image]:
    """The GIF's frames: one per drawn kernel position (the transposed view, if any, beside it:
    the same output cell, and the inputs it reads)."""
    cell = _cell_size(max(len(slide.rows), len(slide.cols)), 360, 4, 28)
    other, x = None, MARGIN
    if scatter is not None:  # the transposed view first, its direct equivalent to the right
        other = ScatterPanel(scatter, MARGIN, MARGIN + 44, cell)
        x += other.size[0] + 2 * GAP
    panel = SlidePanel(slide, x, MARGIN + 44, cell)
    width, height = x - MARGIN + panel.size[0], max(panel.size[1], other.size[1] if other else 0)
    footer = [*filter(None, slide.formula), *filter(None, [_summary(slide)])]
    legend = _legend_of(slide, scatter)
    heading = slide.heading if scatter is None else f"{scatter.heading}   |   {slide.heading.split(': ', 1)[1]}"
    w, h, footer_y = _layout(heading, width, height, footer, legend)
    progress = _blank((w, h))
    draw = ImageDraw.Draw(progress)
    _text(draw, (MARGIN, MARGIN), heading, 14)
    panel.base(draw)
    if other is not None:
        other.base(draw)
    _footer(draw, MARGIN, footer_y, footer)
    _legend(draw, MARGIN, footer_y + 18 * len(footer) + 4, legend)
    origin = None
    if scatter is not None:
        (r0, c0), (k0, l0) = scatter.origin(), (slide.keep[0][0], slide.keep[1][0])
        origin = (r0 - k0, c0 - l0)
    frames = []
    caption_y = MARGIN + 20  # above the panels: a frame then differs from the last near the top only
    for n, f in enumerate(slide.frames):
        image = progress.copy()
        d = ImageDraw.Draw(image)
        panel.frame(d, n, slide.frames)
        _text(d, (MARGIN, caption_y), _caption(slide, f), 12)
        if other is not None:
            for cell_ in _inputs_read(slide, f):
                other.input.fill(d, *cell_, COLOURS["tap"], COLOURS["background"])
            other.output.fill(d, f.cell[0] + origin[0], f.cell[1] + origin[1], COLOURS["now"], COLOURS["out_edge"])
        frames.append(image)
        panel.done(draw, f)
        if other is not None:
            other.output.fill(draw, f.cell[0] + origin[0], f.cell[1] + origin[1], COLOURS["done"], COLOURS["out_edge"])
    return frames


def _tiles(make, frames: Sequence[Frame], columns: int, label) -> Tuple[Image.Image, int]:
    """Every frame as a small picture, `columns` to a row, each under its label; (image, height)."""
    first = make(frames[0])
    tw, th = first.size
    rows = -(-len(frames) // columns)
    step_x, step_y = tw + 2 * TILE_PAD + 8, th + 2 * TILE_PAD + 26
    sheet = _blank((columns * step_x, rows * step_y))
    draw = ImageDraw.Draw(sheet)
    for n, f in enumerate(frames):
        r, c = divmod(n, columns)
        x, y = c * step_x, r * step_y
        draw.rectangle((x, y, x + tw + 2 * TILE_PAD, y + th + 2 * TILE_PAD + 18), outline=COLOURS["tile"])
        _text(draw, (x + TILE_PAD, y + 3), label(f), 11)
        sheet.paste(first if n == 0 else make(f), (x + TILE_PAD, y + TILE_PAD + 18))
    return sheet, sheet.size[1]


def _slide_tile(slide: Slide):
    cell = _cell_size(max(len(slide.rows), len(slide.cols)), 180, 3, 16)
    panel = SlidePanel(slide, 0, -18, cell, max(2 * cell, 8))  # the tile's own label says what it is
    w, h = panel.size
    base = _blank((w, h - 18))
    panel.base(ImageDraw.Draw(base))
    index = {f: n for n, f in enumerate(slide.frames)}

    def make(f: Frame) -> Image.Image:
        image = base.copy()
        panel.frame(ImageDraw.Draw(image), index[f], slide.frames)
        return image
    return make


def _scatter_tile(scatter: Scatter):
    cell = _cell_size(max(len(scatter.rows), len(scatter.cols)), 180, 3, 16)
    panel = ScatterPanel(scatter, 0, -18, cell, max(2 * cell, 8))
    w, h = panel.size
    base = _blank((w, h - 18))
    panel.base(ImageDraw.Draw(base))

    def make(f: Frame) -> Image.Image:
        image = base.copy()
        panel.stamp(ImageDraw.Draw(image), f)
        return image
    return make


def _columns(n: int) -> int:
    """Tiles per row: a whole output row when it is short, else a divisor of it (rows stay aligned)."""
    if n <= 8:
        return n
    return next((d for d in range(8, 3, -1) if n % d == 0), 8)


def sheet(slide: Slide, scatter: Optional[Scatter] = None) -> Image.Image:
    """The still: every drawn position as a tile (for a transposed convolution, its stamps first)."""
    sections = []
    if scatter is not None:
        tiles, _ = _tiles(_scatter_tile(scatter), scatter.frames, _columns(scatter.inputs[1]),
                          lambda f: f"input ({f.cell[0]}, {f.cell[1]}) stamps")
        more = (f"… {scatter.hidden_rows} more rows of inputs ({scatter.hidden_rows * scatter.inputs[1]} stamps), not drawn"
                if scatter.hidden_rows else None)
        sections.append((scatter.heading, tiles, more))
    tiles, _ = _tiles(_slide_tile(slide), slide.frames, _columns(slide.out[1]),
                      lambda f: f"output ({f.cell[0]}, {f.cell[1]})")
    sections.append((slide.heading, tiles, _summary(slide)))
    footer = [*filter(None, slide.formula)]
    legend = _legend_of(slide, scatter)
    width = 2 * MARGIN + max(max(t.size[0], _width(h, 14), _width(m or "")) for h, t, m in sections)
    width = max(width, 2 * MARGIN + max([_width(l) for l in footer] + [sum(16 + _width(l, 12) + 14 for l, _ in legend)]))
    height = MARGIN + sum(24 + t.size[1] + (20 if m else 0) + 8 for _, t, m in sections) + 18 * len(footer) + 24 + MARGIN
    image = _blank((width, height))
    draw = ImageDraw.Draw(image)
    y = MARGIN
    for heading, tiles, more in sections:
        _text(draw, (MARGIN, y), heading, 14)
        image.paste(tiles, (MARGIN, y + 24))
        y += 24 + tiles.size[1]
        if more:
            _text(draw, (MARGIN, y), more)
            y += 20
        y += 8
    _footer(draw, MARGIN, y, footer)
    _legend(draw, MARGIN, y + 18 * len(footer) + 4, legend)
    return image


def groups(g: Groups) -> Image.Image:
    """Input channels left, output channels right, both columns as tall: a band joins each group's
    inputs to the outputs that read them (bands run level, since each group holds the same share)."""
    most = max(g.inputs, g.outputs)
    column = most * _cell_size(most, 400, 1, 12)  # whole pixels per channel of the longer column
    u_in, u_out = column / g.inputs, column / g.outputs
    top, box_w = MARGIN + 24 + 22, 40
    left_x = MARGIN + 70
    right_x = left_x + box_w + 240
    width = max(right_x + box_w + 80 + MARGIN, 2 * MARGIN + _width(g.heading, 14))
    height = top + column + 34 + MARGIN
    image = _blank((width, height))
    draw = ImageDraw.Draw(image)
    _text(draw, (MARGIN, MARGIN), g.heading, 14)
    _text(draw, (left_x - 30, top - 20), f"input channels ({g.inputs})", 12)
    _text(draw, (right_x - 30, top - 20), f"output channels ({g.outputs})", 12)
    spans: Dict[Tuple[int, int], List[int]] = {}
    for o, span in enumerate(g.reads):
        spans.setdefault(span, []).append(o)
    for n, ((lo, hi), outs) in enumerate(spans.items()):
        colour = GROUP_COLOURS[n % len(GROUP_COLOURS)]
        o0, o1 = min(outs), max(outs) + 1
        y_in, y_out = (top + lo * u_in, top + hi * u_in - 1), (top + o0 * u_out, top + o1 * u_out - 1)
        draw.polygon([(left_x + box_w, y_in[0]), (right_x, y_out[0]), (right_x, y_out[1]), (left_x + box_w, y_in[1])],
                     fill=colour)
        for c in range(lo, hi):
            draw.rectangle((left_x, top + c * u_in, left_x + box_w, top + (c + 1) * u_in - 1), fill=colour,
                           outline=COLOURS["background"] if u_in >= 4 else None)
        for o in outs:
            draw.rectangle((right_x, top + o * u_out, right_x + box_w, top + (o + 1) * u_out - 1), fill=colour,
                           outline=COLOURS["background"] if u_out >= 4 else None)
        if (hi - lo) * u_in >= 14 and (o1 - o0) * u_out >= 14:
            label_in = f"{lo}–{hi - 1}" if hi - lo > 1 else f"{lo}"
            _text(draw, (left_x - 8 - _width(label_in, 11), y_in[0]), label_in, 11)
            _text(draw, (right_x + box_w + 8, y_out[0]), f"{o0}–{o1 - 1}" if o1 - o0 > 1 else f"{o0}", 11)
    per_in, per_out = g.inputs // len(spans), g.outputs // len(spans)
    _text(draw, (MARGIN, height - MARGIN - 16),
          f"{len(spans)} group(s), one colour each: {per_in} input → {per_out} output channel(s) per group", 12)
    return image


def receptive_fields(boxes: Sequence[Tuple[str, Tuple[float, float, float, float]]], digit: Optional[bytes],
                     height: int, width: int, note: str = "") -> Image.Image:
    """The input (a digit, or an empty grid) with, per layer, the pixels its centre unit sees."""
    scale = max(4, 280 // max(height, width))
    if digit is not None:
        pixels = Image.frombytes("L", (width, height), digit).resize((width * scale, height * scale), Image.NEAREST)
    else:
        pixels = Image.new("L", (width * scale, height * scale), 0)
    legend_w = max([_width(f"{n}", 12) for n, _ in boxes] + [200]) + 30
    size = (2 * MARGIN + width * scale + 20 + legend_w, 2 * MARGIN + 24 + height * scale + (20 if note else 0))
    image = Image.new("RGB", size, RGB["background"])
    x0, y0 = MARGIN, MARGIN + 24
    image.paste(pixels.convert("RGB"), (x0, y0))
    draw = ImageDraw.Draw(image)
    _text(draw, (MARGIN, MARGIN), "receptive field: the input pixels one centre unit of each layer sees", 14)
    for i in range(height + 1):
        draw.line((x0, y0 + i * scale, x0 + width * scale, y0 + i * scale), fill=(60, 60, 60))
    for j in range(width + 1):
        draw.line((x0 + j * scale, y0, x0 + j * scale, y0 + height * scale), fill=(60, 60, 60))
    colours = [(230, 60, 50), (250, 160, 40), (90, 200, 90), (60, 150, 240), (200, 90, 220), (240, 230, 80)]
    for n, (label, (bx0, by0, bx1, by1)) in enumerate(boxes):
        colour = colours[n % len(colours)]
        draw.rectangle((x0 + bx0 * scale, y0 + by0 * scale, x0 + bx1 * scale - 1, y0 + by1 * scale - 1),
                       outline=colour, width=2)
        ly = y0 + 4 + 20 * n
        draw.rectangle((x0 + width * scale + 20, ly + 2, x0 + width * scale + 32, ly + 14), outline=colour, width=2)
        _text(draw, (x0 + width * scale + 38, ly), label, 12)
    if note:
        _text(draw, (MARGIN, y0 + height * scale + 4), note, 12)
    return image


def save_gif(frames: Sequence[Image.Image], path: Path) -> None:
    frames[0].save(path, save_all=True, append_images=list(frames[1:]), duration=FRAME_MS, loop=0, optimize=False)
