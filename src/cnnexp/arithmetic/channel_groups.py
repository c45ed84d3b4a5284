"""A grouped convolution's picture: which input channels each output channel reads."""

from __future__ import annotations

from typing import Dict, List, Tuple

from PIL import Image, ImageDraw

from cnnexp.arithmetic.canvas import COLOURS, GROUP_COLOURS, MARGIN, blank, cell_size, put_text, text_width
from cnnexp.arithmetic.scene import Groups

COLUMN_PX = 400             # the longer column of channels spans about this many pixels
CHANNEL_PX = (1, 12)        # … each channel no thinner and no thicker than these
BOX_W, BAND_W = 40, 240     # a column's width; the width the bands cross between the columns


def groups(g: Groups) -> Image.Image:
    """Input channels left, output channels right, both columns as tall: a band joins each group's
    inputs to the outputs that read them (bands run level, since each group holds the same share)."""
    most = max(g.inputs, g.outputs)
    column = most * cell_size(most, COLUMN_PX, *CHANNEL_PX)  # whole pixels per channel of the longer column
    u_in, u_out = column / g.inputs, column / g.outputs
    top = MARGIN + 24 + 22
    left_x = MARGIN + 70
    right_x = left_x + BOX_W + BAND_W
    width = max(right_x + BOX_W + 80 + MARGIN, 2 * MARGIN + text_width(g.heading, 14))
    height = top + column + 34 + MARGIN
    image = blank((width, height))
    draw = ImageDraw.Draw(image)
    put_text(draw, (MARGIN, MARGIN), g.heading, 14)
    put_text(draw, (left_x - 30, top - 20), f"input channels ({g.inputs})", 12)
    put_text(draw, (right_x - 30, top - 20), f"output channels ({g.outputs})", 12)
    spans: Dict[Tuple[int, int], List[int]] = {}
    for o, span in enumerate(g.reads):
        spans.setdefault(span, []).append(o)
    for n, ((lo, hi), outs) in enumerate(spans.items()):
        colour = GROUP_COLOURS[n % len(GROUP_COLOURS)]
        o0, o1 = min(outs), max(outs) + 1
        y_in, y_out = (top + lo * u_in, top + hi * u_in - 1), (top + o0 * u_out, top + o1 * u_out - 1)
        draw.polygon([(left_x + BOX_W, y_in[0]), (right_x, y_out[0]), (right_x, y_out[1]), (left_x + BOX_W, y_in[1])],
                     fill=colour)
        for c in range(lo, hi):
            draw.rectangle((left_x, top + c * u_in, left_x + BOX_W, top + (c + 1) * u_in - 1), fill=colour,
                           outline=COLOURS["background"] if u_in >= 4 else None)
        for o in outs:
            draw.rectangle((right_x, top + o * u_out, right_x + BOX_W, top + (o + 1) * u_out - 1), fill=colour,
                           outline=COLOURS["background"] if u_out >= 4 else None)
        if (hi - lo) * u_in >= 14 and (o1 - o0) * u_out >= 14:
            label_in = f"{lo}–{hi - 1}" if hi - lo > 1 else f"{lo}"
            put_text(draw, (left_x - 8 - text_width(label_in, 11), y_in[0]), label_in, 11)
            put_text(draw, (right_x + BOX_W + 8, y_out[0]), f"{o0}–{o1 - 1}" if o1 - o0 > 1 else f"{o0}", 11)
    per_in, per_out = g.inputs // len(spans), g.outputs // len(spans)
    put_text(draw, (MARGIN, height - MARGIN - 16),
             f"{len(spans)} group(s), one colour each: {per_in} input → {per_out} output channel(s) per group", 12)
    return image
