"""What every picture of the arithmetic is drawn with: the fixed palette, the font and cached
glyphs, a grid of cells, and the heading, footer and legend around panels. Pillow, no torch.

Pictures are P-mode on one fixed palette: frames need no quantising, which is what keeps drawing
all of cnn3's layers well under two seconds.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Sequence, Tuple

from PIL import Image, ImageDraw, ImageFont

# The conv_arithmetic look: input blue, padding white (dashed), kernel taps dark blue, output green.
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
MARGIN, GAP, TILE_PAD = 14, 28, 5  # pixels: around a picture, between a panel's two grids, inside a tile
LINE_PX = 18  # a line of text: a grid's label above it, each footer line


# ------------------------------------------------------------------ fonts and text
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


def blank(size: Tuple[int, int]) -> Image.Image:
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


def put_text(draw: ImageDraw.ImageDraw, xy, text: str, size: int = 13, fill=COLOURS["text"]) -> None:
    """Text pasted glyph by glyph from a cache: a picture's many labels cost a third of drawing
    each afresh."""
    x, y = xy
    for char in text:
        mask, advance = _glyph(char, size)
        if char != " ":
            draw.im.paste(fill, (int(round(x)), int(y), int(round(x)) + mask.width, int(y) + mask.height), mask.im)
        x += advance


def text_width(text: str, size: int = 13) -> int:
    return int(font(size).getlength(text)) + 1


def dashed_box(draw: ImageDraw.ImageDraw, box, colour, dash: int = 3) -> None:
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
                dashed_box(draw, box, edge)
            else:
                draw.rectangle(box, outline=edge)

    def outline(self, draw, cells: Sequence[Tuple[int, int]], colour, width: int = 2) -> None:
        """The rectangle around `cells` (a kernel footprint: its taps and the gaps between)."""
        rows, cols = [r for r, _ in cells], [c for _, c in cells]
        x0, y0, _, _ = self.box(min(rows), min(cols))
        _, _, x1, y1 = self.box(max(rows), max(cols))
        draw.rectangle((x0 - 1, y0 - 1, x1 + 1, y1 + 1), outline=colour, width=width)


def cell_size(cells: int, target: int, smallest: int, largest: int) -> int:
    """Whole pixels per cell for `cells` cells to span about `target` pixels, within [smallest, largest]."""
    return max(smallest, min(largest, target // max(cells, 1)))


def grid_pair(x: int, y: int, inputs: Tuple[int, int], outputs: Tuple[int, int], cell: int,
              gap: int) -> Tuple[Grid, Grid]:
    """An input grid and, `gap` pixels to its right, an output grid, each under its label."""
    first = Grid(x, y + LINE_PX, *inputs, cell)
    return first, Grid(x + first.size[0] + gap, y + LINE_PX, *outputs, cell)


def pair_extent(first: Grid, second: Grid) -> Tuple[int, int]:
    return second.x + second.size[0] - first.x, LINE_PX + max(first.size[1], second.size[1])


# ------------------------------------------------------------------ around the panels
def footer_lines(draw, x: int, y: int, lines: Sequence[str]) -> None:
    for line in lines:
        put_text(draw, (x, y), line)
        y += LINE_PX


def legend_row(draw, x: int, y: int, items: Sequence[Tuple[str, str]]) -> None:
    for label, kind in items:
        draw.rectangle((x, y + 2, x + 11, y + 13), fill=COLOURS[kind], outline=COLOURS["edge"])
        put_text(draw, (x + 16, y), label, 12)
        x += 16 + text_width(label, 12) + 14


def legend_width(items: Sequence[Tuple[str, str]]) -> int:
    return sum(16 + text_width(label, 12) + 14 for label, _ in items)


def layout(heading: str, panels_w: int, panels_h: int, footer: Sequence[str], legend) -> Tuple[int, int, int]:
    """(width, height, y of the footer) of a picture: heading, caption line, panels, footer, legend."""
    width = 2 * MARGIN + max(panels_w, text_width(heading, 14), legend_width(legend), *(text_width(l) for l in footer))
    footer_y = MARGIN + 44 + panels_h + 8
    return width, footer_y + LINE_PX * len(footer) + 24 + MARGIN, footer_y
