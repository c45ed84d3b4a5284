"""A layer's GIF: one frame per drawn kernel position, the output cells filling as it goes (for a
transposed convolution, its scatter view beside the direct one). The static part is drawn once
and each frame adds only the kernel."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

from PIL import Image, ImageDraw

from cnnexp.arithmetic.canvas import (COLOURS, GAP, LINE_PX, MARGIN, blank, cell_size, footer_lines, layout,
                                      legend_row, put_text)
from cnnexp.arithmetic.panels import ScatterPanel, SlidePanel, caption, hidden_note, inputs_read, legend_of
from cnnexp.arithmetic.scene import Scatter, Slide
from cnnexp.core.figures import save_image

FRAME_MS = 450
PANEL_PX = 360              # a GIF's input grid spans about this many pixels
CELL_PX = (4, 28)           # … in cells no smaller and no larger than these


def animation(slide: Slide, scatter: Optional[Scatter] = None) -> List[Image.Image]:
    """The GIF's frames: one per drawn kernel position (the transposed view, if any, beside it:
    the same output cell, and the inputs it reads)."""
    cell = cell_size(max(len(slide.rows), len(slide.cols)), PANEL_PX, *CELL_PX)
    other, x = None, MARGIN
    if scatter is not None:  # the transposed view first, its direct equivalent to the right
        other = ScatterPanel(scatter, MARGIN, MARGIN + 44, cell)
        x += other.size[0] + 2 * GAP
    panel = SlidePanel(slide, x, MARGIN + 44, cell)
    width, height = x - MARGIN + panel.size[0], max(panel.size[1], other.size[1] if other else 0)
    footer = [*filter(None, slide.formula), *filter(None, [hidden_note(slide)])]
    legend = legend_of(slide, scatter)
    heading = slide.heading if scatter is None else f"{scatter.heading}   |   {slide.heading.split(': ', 1)[1]}"
    w, h, footer_y = layout(heading, width, height, footer, legend)
    progress = blank((w, h))
    draw = ImageDraw.Draw(progress)
    put_text(draw, (MARGIN, MARGIN), heading, 14)
    panel.base(draw)
    if other is not None:
        other.base(draw)
    footer_lines(draw, MARGIN, footer_y, footer)
    legend_row(draw, MARGIN, footer_y + LINE_PX * len(footer) + 4, legend)
    return _frames(progress, slide, panel, other, scatter)


def _frames(progress: Image.Image, slide: Slide, panel: SlidePanel, other: Optional[ScatterPanel],
            scatter: Optional[Scatter]) -> List[Image.Image]:
    """Each position drawn on a copy of `progress`, which then keeps its output cell as done."""
    draw = ImageDraw.Draw(progress)
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
        put_text(d, (MARGIN, caption_y), caption(slide, f), 12)
        if other is not None:
            for cell_ in inputs_read(slide, f):
                other.input.fill(d, *cell_, COLOURS["tap"], COLOURS["background"])
            other.output.fill(d, f.cell[0] + origin[0], f.cell[1] + origin[1], COLOURS["now"], COLOURS["out_edge"])
        frames.append(image)
        panel.done(draw, f)
        if other is not None:
            other.output.fill(draw, f.cell[0] + origin[0], f.cell[1] + origin[1], COLOURS["done"], COLOURS["out_edge"])
    return frames


def save_gif(frames: Sequence[Image.Image], path: Path) -> None:
    save_image(frames[0], path, save_all=True, append_images=list(frames[1:]), duration=FRAME_MS, loop=0, optimize=False)
