"""`python -m cnnexp.predict run=FOLDER images='my_digits/*.png'`: classify your own images.

A run trained on a folder of images (data=folder) reads each file as it trained: its channels,
size and per-channel normalisation, and answers with its class names. For an MNIST run, any
PNG/JPEG, any size or colour, is turned into an MNIST-style digit first: greyscale; inverted
when the background is light (MNIST digits are white on black); cropped to the ink; scaled so the
longer side is 20 px; placed in a 28×28 frame with its centre of mass at the centre.

    python -m cnnexp.predict run=outputs/2026-11-25/10-31-02 images='digits/*.png' [top=3] [json=true]
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from cnnexp.data.images import EXTENSIONS, header
from cnnexp.errors import RunError, SettingsError, UserError, fail
from cnnexp.run_folder import load_task
from cnnexp.tasks import TASKS


@dataclass
class PredictArgs:
    run: Optional[str] = None     # a run folder: its best.ckpt (else last.ckpt)
    ckpt: Optional[str] = None    # or a checkpoint file
    images: Optional[str] = None  # a file, a folder, or a glob pattern (quoted)
    top: int = 3                  # classes listed per image, most probable first
    json: bool = False            # the answers as JSON, probabilities to 4 decimals


def read_gray(path: Path):
    """Any PNG/JPEG as 8-bit greyscale: transparency on white paper, 16-bit scaled (not clipped)."""
    import warnings

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                if im.mode.startswith("I") or im.mode == "F":  # 16/32-bit: scale to the type's range
                    a = np.asarray(im, dtype=np.float64)
                    top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
                    return Image.fromarray(np.clip(a / top * 255, 0, 255).round().astype(np.uint8), "L")
                if im.mode in ("RGBA", "LA", "P", "PA"):
                    im = im.convert("RGBA")
                    background = Image.new("RGBA", im.size, (255, 255, 255, 255))
                    im = Image.alpha_composite(background, im)  # transparent → white paper
                return im.convert("L")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        raise RunError(f"{path}: not a readable image ({str(e).splitlines()[0][:160]})") from None


def mnist_style(path: Path):
    """An image file → 28×28 float tensor in [0, 1], white digit on black, centred like MNIST;
    None when the image holds no ink (blank, or a single shade)."""
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    gray = read_gray(path)
    a = np.asarray(gray, dtype=np.float32)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    if border.mean() > 127:                     # dark ink on light paper → MNIST's white on black
        gray = ImageOps.invert(gray)
        a = 255 - a
    if a.max() - a.min() < 16:                  # no stroke stands out from the paper
        return None
    ink = a > 0.25 * a.max()
    rows, cols = np.where(ink.any(1))[0], np.where(ink.any(0))[0]
    digit = gray.crop((cols[0], rows[0], cols[-1] + 1, rows[-1] + 1))
    scale = 20 / max(digit.size)
    digit = digit.resize((max(1, round(digit.width * scale)), max(1, round(digit.height * scale))), Image.LANCZOS)
    d = np.asarray(digit, dtype=np.float32)
    ys, xs = np.indices(d.shape)
    mass = d.sum() or 1.0
    cy, cx = (ys * d).sum() / mass, (xs * d).sum() / mass
    canvas = np.zeros((28, 28), np.float32)
    top, left = int(round(14 - cy)), int(round(14 - cx))
    top, left = min(max(top, 0), 28 - d.shape[0]), min(max(left, 0), 28 - d.shape[1])
    canvas[top:top + d.shape[0], left:left + d.shape[1]] = d
    return torch.from_numpy(canvas / 255.0)


def find_images(pattern: str) -> List[Path]:
    path = Path(pattern).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in EXTENSIONS)
    else:
        files = sorted(Path(p) for p in glob.glob(str(path)))
    if not files:
        raise RunError(f"images={pattern}: no image files found")
    return files


def folder_style(path: Path, data):
    """An image file → the tensor a data=folder run trained on: its channels, size and normalisation."""
    from cnnexp.data.folder import channel_stats, read_image
    from cnnexp.data.mnist import to_float

    if header(path) is None:  # PIL's header check: not an image, or a decompression bomb
        raise RunError(f"{path}: not a readable image")
    return to_float(read_image(path, data.channels, data.image_size), data.normalize, *channel_stats(data))


def ranked(probs, k: int, label: str, name=lambda i: i) -> dict:
    """The best class and the top k with their probabilities, under `label` ("digit" or "class")."""
    import torch

    top = torch.topk(probs, min(k, len(probs)))
    return {label: name(int(top.indices[0])),
            "top": [{label: name(int(i)), "probability": four_digits(float(v))} for v, i in zip(top.values, top.indices)]}


def four_digits(p: float) -> float:
    """4 decimals, and more where p is near 0 or 1, so that 0.999996 and 2.3e-05 stay themselves:
    4 significant digits of its distance to the nearer end. Only an exact 0 or 1 reads as one."""
    import math

    near = min(p, 1 - p)
    return round(p, 4 if near <= 0 else min(12, max(4, 3 - math.floor(math.log10(near)))))


def predict(args: PredictArgs) -> List[dict]:
    import torch

    from cnnexp.data.mnist import to_float

    if not args.images:
        raise SettingsError("images", None, "a file, folder or glob, e.g. images='my_digits/*.png'")
    task, _ = load_task(args.run, args.ckpt)
    if not TASKS[task.settings.model.task].classifies:
        raise RunError(f"run={args.run}: a {task.settings.model.name} model does not classify images")
    files = find_images(args.images)
    data = task.settings.data
    if data.name == "folder":  # the run's own resize and normalisation, and its class names
        x = torch.stack([folder_style(f, data) for f in files])
        with torch.no_grad():
            probs = torch.softmax(task(x), dim=1)
        return [{"file": str(f), **ranked(p, args.top, "class", data.classes.__getitem__)} for f, p in zip(files, probs)]
    digits = [mnist_style(f) for f in files]                      # all read before any is predicted
    inked = [d for d in digits if d is not None]
    probs = iter([])
    if inked:
        pixels = torch.stack(inked)
        x = to_float((pixels * 255).round().to(torch.uint8)[:, None], task.settings.data.normalize)
        with torch.no_grad():
            probs = iter(torch.softmax(task(x), dim=1))
    results = []
    for f, d in zip(files, digits):
        if d is None:
            results.append({"file": str(f), "digit": None, "top": [], "note": "no digit found (blank image)"})
            continue
        results.append({"file": str(f), **ranked(next(probs), args.top, "digit")})
    return results


def main(argv=None) -> None:
    from cnnexp import cli_args

    cli_args.exit_on_help(__doc__, argv, PredictArgs)
    try:
        args = cli_args.parse(PredictArgs, argv)
        if args.top < 1:
            raise SettingsError("top", args.top, "an integer ≥ 1")
        results = predict(args)
    except UserError as e:
        fail(e)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    width = max(len(r["file"]) for r in results)
    for r in results:
        label = "class" if "class" in r else "digit"
        if r[label] is None:
            print(f"{r['file']:<{width}}  → {r['note']}")
            continue
        tops = "  ".join(f"{t[label]}: {100 * t['probability']:5.1f} %" for t in r["top"])
        print(f"{r['file']:<{width}}  → {r[label]}   ({tops})")


if __name__ == "__main__":
    main()
