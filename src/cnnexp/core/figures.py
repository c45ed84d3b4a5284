"""The one way a matplotlib figure becomes a picture: headless, at one resolution, written
atomically. summary.png, compare.png, the search's figures and TensorBoard's images all pass here;
Pillow's pictures (shapes draw=) are written atomically by `save_image`."""

from __future__ import annotations

import io
from pathlib import Path

from cnnexp.core.files import write_atomic

DPI = 100  # every PNG the product writes: a figure's inches × 100 (a 5.2-inch figure fills a TensorBoard card)


def pyplot():
    """matplotlib.pyplot, headless: figures are rendered to images, never shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(figure, close: bool = True) -> bytes:
    """The figure as PNG bytes at DPI; closed unless it is still to be used (TensorBoard too)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    if close:
        pyplot().close(figure)
    return buffer.getvalue()


def save_png(figure, path: Path, close: bool = True) -> Path:
    write_atomic(Path(path), png(figure, close))
    return Path(path)


def save_image(image, path: Path, **params) -> Path:
    """A Pillow image (or a GIF's first frame, with `save_all`/`append_images` …) written whole or not
    at all, in the format its suffix names: a full disk leaves no half picture."""
    buffer = io.BytesIO()
    image.save(buffer, format=Path(path).suffix.lstrip(".").upper().replace("JPG", "JPEG"), **params)
    write_atomic(Path(path), buffer.getbuffer())
    return Path(path)
