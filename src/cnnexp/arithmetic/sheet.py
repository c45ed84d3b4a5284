"""A layer's still sheet: every drawn kernel position as a small tile, a whole output row to a
row of tiles (for a transposed convolution, its stamps first) — what the PNG and TensorBoard's
`arithmetic/<layer>` show."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from PIL import Image, ImageDraw

from cnnexp.arithmetic.canvas import (COLOURS, LINE_PX, MARGIN, TILE_PAD, blank, cell_size, footer_lines,
                                      legend_row, legend_width, put_text, text_width)
from cnnexp.arithmetic.panels import ScatterPanel, SlidePanel, hidden_note, legend_of
from cnnexp.arithmetic.scene import Frame, Scatter, Slide

TILE_PX = 180               # a tile's input grid spans about this many pixels
TILE_CELL_PX = (3, 16)      # … in cells no smaller and no larger than these


def _tiles(make, frames: Sequence[Frame], columns: int, label) -> Tuple[Image.Image, int]:
    """Every frame as a small picture, `columns` to a row, each under its label; (image, height)."""
    first = make(frames[0])
    tw, th = first.size
    rows = -(-len(frames) // columns)
    step_x, step_y = tw + 2 * TILE_PAD + 8, th + 2 * TILE_PAD + 26
    sheet = blank((columns * step_x, rows * step_y))
    draw = ImageDraw.Draw(sheet)
    for n, f in enumerate(frames):
        r, c = divmod(n, columns)
        x, y = c * step_x, r * step_y
        draw.rectangle((x, y, x + tw + 2 * TILE_PAD, y + th + 2 * TILE_PAD + LINE_PX), outline=COLOURS["tile"])
        put_text(draw, (x + TILE_PAD, y + 3), label(f), 11)
        sheet.paste(first if n == 0 else make(f), (x + TILE_PAD, y + TILE_PAD + LINE_PX))
    return sheet, sheet.size[1]


def _slide_tile(slide: Slide):
    # a series' one row of steps: twice the span, so its cells are not slivers
    cell = cell_size(max(len(slide.rows), len(slide.cols)), TILE_PX * (2 if slide.dims == 1 else 1), *TILE_CELL_PX)
    panel = SlidePanel(slide, 0, -LINE_PX, cell, max(2 * cell, 8))  # the tile's own label says what it is
    w, h = panel.size
    base = blank((w, h - LINE_PX))
    panel.base(ImageDraw.Draw(base))
    index = {f: n for n, f in enumerate(slide.frames)}

    def make(f: Frame) -> Image.Image:
        image = base.copy()
        panel.frame(ImageDraw.Draw(image), index[f], slide.frames)
        return image
    return make


def _scatter_tile(scatter: Scatter):
    cell = cell_size(max(len(scatter.rows), len(scatter.cols)), TILE_PX, *TILE_CELL_PX)
    panel = ScatterPanel(scatter, 0, -LINE_PX, cell, max(2 * cell, 8))
    w, h = panel.size
    base = blank((w, h - LINE_PX))
    panel.base(ImageDraw.Draw(base))

    def make(f: Frame) -> Image.Image:
        image = base.copy()
        panel.stamp(ImageDraw.Draw(image), f)
        return image
    return make


def _columns(n: int, most: int = 8) -> int:
    """Tiles per row: a whole output row when it is short, else a divisor of it (rows stay aligned)."""
    if n <= most:
        return n
    return next((d for d in range(most, most // 2 - 1, -1) if n % d == 0), most)


def sheet(slide: Slide, scatter: Optional[Scatter] = None) -> Image.Image:
    """The still: every drawn position as a tile (for a transposed convolution, its stamps first)."""
    sections = []
    most = 4 if slide.dims == 1 else 8  # a series' tiles are twice as wide
    where = (lambda f: str(f.cell[1])) if slide.dims == 1 else (lambda f: f"({f.cell[0]}, {f.cell[1]})")  # noqa: E731
    if scatter is not None:
        tiles, _ = _tiles(_scatter_tile(scatter), scatter.frames, _columns(scatter.inputs[1], most),
                          lambda f: f"input {where(f)} stamps")
        more = (f"… {scatter.hidden_rows} more rows of inputs ({scatter.hidden_rows * scatter.inputs[1]} stamps), not drawn"
                if scatter.hidden_rows else None)
        sections.append((scatter.heading, tiles, more))
    tiles, _ = _tiles(_slide_tile(slide), slide.frames, _columns(slide.out[1], most),
                      lambda f: f"output {where(f)}")
    sections.append((slide.heading, tiles, hidden_note(slide)))
    footer = [*filter(None, slide.formula)]
    legend = legend_of(slide, scatter)
    width = 2 * MARGIN + max(max(t.size[0], text_width(h, 14), text_width(m or "")) for h, t, m in sections)
    width = max(width, 2 * MARGIN + max([text_width(l) for l in footer] + [legend_width(legend)]))
    height = (MARGIN + sum(24 + t.size[1] + (20 if m else 0) + 8 for _, t, m in sections) + LINE_PX * len(footer)
              + 24 + MARGIN)
    image = blank((width, height))
    draw = ImageDraw.Draw(image)
    y = MARGIN
    for heading, tiles, more in sections:
        put_text(draw, (MARGIN, y), heading, 14)
        image.paste(tiles, (MARGIN, y + 24))
        y += 24 + tiles.size[1]
        if more:
            put_text(draw, (MARGIN, y), more)
            y += 20
        y += 8
    footer_lines(draw, MARGIN, y, footer)
    legend_row(draw, MARGIN, y + LINE_PX * len(footer) + 4, legend)
    return image
