"""A class-per-folder set of colour images made from real MNIST test digits: each class tinted
its own colour (so colour carries signal), saved at 32×32 (a few at 40×40) as PNG and JPEG in
mixed modes — RGB, RGBA, palette, 16-bit greyscale — with a stray text file and a broken PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (230, 25, 75), "green": (60, 180, 75), "blue": (0, 130, 200), "orange": (245, 130, 48),
           "purple": (145, 30, 180), "cyan": (70, 240, 240), "magenta": (240, 50, 230), "lime": (210, 245, 60),
           "pink": (250, 190, 212), "teal": (0, 128, 128)}


def tinted_digits(root: Path, data_root: Path, per_class: int = 40, classes: int = 10) -> Path:
    from cnnexp.data.mnist import load_split

    digits, labels = load_split(data_root, train=False)
    for c, (name, colour) in enumerate(list(COLOURS.items())[:classes]):
        folder = root / f"{c}_{name}"
        folder.mkdir(parents=True)
        picked = np.nonzero(labels.numpy() == c)[0][:per_class]
        for n, i in enumerate(picked):
            ink = digits[i, 0].numpy().astype(np.float32) / 255
            rgb = (ink[..., None] * np.array(colour, np.float32)).round().astype(np.uint8)
            image = Image.fromarray(rgb, "RGB").resize((40, 40) if n % 10 == 9 else (32, 32), Image.BILINEAR)
            kind = n % 5
            if kind == 0:
                image.save(folder / f"{n}.jpg", quality=92)
            elif kind == 1:
                image.convert("RGBA").save(folder / f"{n}.png")
            elif kind == 2:
                image.convert("P", palette=Image.ADAPTIVE).save(folder / f"{n}.png")
            elif kind == 3 and n == 3:  # one 16-bit greyscale image per class
                grey = np.asarray(image.convert("L"), np.uint16) * 257
                Image.fromarray(grey).save(folder / f"{n}.png")
            else:
                image.save(folder / f"{n}.png")
    (root / "0_red" / "notes.txt").write_text("not an image")
    (root / "1_green" / "broken.png").write_text("not a png either")
    return root
