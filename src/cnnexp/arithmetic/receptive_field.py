"""The receptive-field picture: the network's input (a real image, or an empty grid) with, per
layer, the box of input pixels its centre unit sees."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from PIL import Image, ImageDraw

from cnnexp.arithmetic.canvas import MARGIN, RGB, put_text, text_width

PICTURE_PX = 280            # the input is drawn about this many pixels across …
PIXEL_PX = 4                # … each of its pixels at least this many
GRID_RGB = (60, 60, 60)
BOX_RGB = [(230, 60, 50), (250, 160, 40), (90, 200, 90), (60, 150, 240), (200, 90, 220), (240, 230, 80)]


def receptive_fields(boxes: Sequence[Tuple[str, Tuple[float, float, float, float]]], image_bytes: Optional[bytes],
                     height: int, width: int, note: str = "") -> Image.Image:
    """The input (`height`×`width` greyscale bytes, or an empty grid) with, per layer, the pixels
    its centre unit sees."""
    scale = max(PIXEL_PX, PICTURE_PX // max(height, width))
    if image_bytes is not None:
        pixels = Image.frombytes("L", (width, height), image_bytes).resize((width * scale, height * scale), Image.NEAREST)
    else:
        pixels = Image.new("L", (width * scale, height * scale), 0)
    legend_w = max([text_width(f"{n}", 12) for n, _ in boxes] + [200]) + 30
    size = (2 * MARGIN + width * scale + 20 + legend_w, 2 * MARGIN + 24 + height * scale + (20 if note else 0))
    image = Image.new("RGB", size, RGB["background"])
    x0, y0 = MARGIN, MARGIN + 24
    image.paste(pixels.convert("RGB"), (x0, y0))
    draw = ImageDraw.Draw(image)
    put_text(draw, (MARGIN, MARGIN), "receptive field: the input pixels one centre unit of each layer sees", 14)
    for i in range(height + 1):
        draw.line((x0, y0 + i * scale, x0 + width * scale, y0 + i * scale), fill=GRID_RGB)
    for j in range(width + 1):
        draw.line((x0 + j * scale, y0, x0 + j * scale, y0 + height * scale), fill=GRID_RGB)
    for n, (label, (bx0, by0, bx1, by1)) in enumerate(boxes):
        colour = BOX_RGB[n % len(BOX_RGB)]
        draw.rectangle((x0 + bx0 * scale, y0 + by0 * scale, x0 + bx1 * scale - 1, y0 + by1 * scale - 1),
                       outline=colour, width=2)
        ly = y0 + 4 + 20 * n
        draw.rectangle((x0 + width * scale + 20, ly + 2, x0 + width * scale + 32, ly + 14), outline=colour, width=2)
        put_text(draw, (x0 + width * scale + 38, ly), label, 12)
    if note:
        put_text(draw, (MARGIN, y0 + height * scale + 4), note, 12)
    return image
