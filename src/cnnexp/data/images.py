"""A folder of your own images, read without torch: its classes, files, splits and image shape.

    root/cat/001.jpg  root/dog/002.png …                  one subfolder per class (ImageFolder's layout)
    root/train/cat/…  root/val/cat/…  root/test/cat/…     or split already: train/ (val/, test/ optional)

Only headers are read here (PIL opens lazily), so the settings check knows the data's shape —
channels, height, width — and its classes before torch is imported. Why not torchvision's
ImageFolder: it imports torch; the class and extension rules here are the same as its own.
"""

from __future__ import annotations

import functools
import logging
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from cnnexp.core.errors import DataUnavailable, RunError, SettingsError

log = logging.getLogger("cnnexp")

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SPLITS = ("train", "val", "test")
COLOUR_MODES = ("RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa")


@dataclass
class Folder:
    classes: List[str]
    files: Dict[str, List[Tuple[Path, int]]]   # split → [(file, class index)]
    size: Tuple[int, int]                      # the most common (height, width)
    colour: bool                               # some image has colour

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.files.values())


def scan(root: str, strict: bool, val_fraction: float, test_fraction: float, seed: int) -> Folder:
    """The folder's classes and images, each image's header checked, split into train/val/test."""
    path = Path(root).expanduser()
    stamp = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in path.iterdir())) if path.is_dir() else None
    return _scan(str(path), stamp, strict, val_fraction, test_fraction, seed)


@functools.lru_cache(maxsize=4)
def _scan(root: str, stamp, strict: bool, val_fraction: float, test_fraction: float, seed: int) -> Folder:
    path = Path(root)
    given, classes = _layout(path, root)
    listed, sizes, colour = _listed(path, root, given, classes, strict)
    # a split without its own folder is carved out of the training images, seeded and per class
    missing = [s for s in ("val", "test") if not listed.get(s)]
    files = {s: listed.get(s, []) for s in SPLITS}
    if given:
        files["train"] = listed["train"]
    carved = stratified(listed["train" if given else "all"], len(classes),
                        val_fraction if "val" in missing else 0.0, test_fraction if "test" in missing else 0.0, seed)
    files["train"] = carved["train"]
    for s in missing:
        files[s] = carved[s]
    if not files["val"]:
        raise SettingsError("data.val_fraction", val_fraction, f"leaves no validation image out of {len(files['train'])}; "
                            "raise it (e.g. 0.1) or add a val/ folder")
    return Folder(classes, files, sizes.most_common(1)[0][0], colour)


def _layout(path: Path, root: str, what: str = "images") -> Tuple[List[str], List[str]]:
    """(the split folders the root has, the class names): train/val/test folders or none, and at
    least two class folders."""
    if not path.is_dir():
        raise DataUnavailable(f"data.root={root}: no such folder; give a folder with one subfolder of {what} "
                              f"per class (data.root=path/to/{what})")
    given = [s for s in SPLITS if (path / s).is_dir()]
    if given and "train" not in given:
        raise DataUnavailable(f"data.root={root}: has {', '.join(s + '/' for s in given)} but no train/; "
                              "add train/<class>/… or put the class folders directly under data.root")
    top = path / "train" if given else path
    classes = sorted(d.name for d in top.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        example = "1.jpg, {top}/dogs/2.jpg" if what == "images" else "1.npy, {top}/dogs/2.npy"
        raise DataUnavailable(f"data.root={root}: no class folders in {top}; put each class's {what} in its own "
                              f"subfolder (e.g. {top}/cats/{example.format(top=top)})")
    if len(classes) < 2:
        raise DataUnavailable(f"data.root={root}: only one class ({classes[0]}); a classifier needs at least two "
                              "class folders")
    for split in given[1:]:
        extra = sorted(d.name for d in (path / split).iterdir() if d.is_dir() and not d.name.startswith(".")
                       and d.name not in classes)
        if extra:
            raise DataUnavailable(f"data.root={root}: {split}/ has class folder{'s' * (len(extra) > 1)} "
                                  f"{', '.join(extra)} that train/ lacks (classes: {', '.join(classes)}); "
                                  f"add it to train/ or remove it from {split}/")
    return given, classes


def _listed(path: Path, root: str, given: List[str], classes: List[str], strict: bool):
    """Each split's (image, class index) pairs (`all` when the root has no split folders), the
    counts of image sizes (H, W), and whether any image has colour; files that are not readable
    images refused (strict) or skipped with one warning."""
    index = {name: i for i, name in enumerate(classes)}
    skipped: List[str] = []
    sizes: Counter = Counter()
    colour = False
    listed: Dict[str, List[Tuple[Path, int]]] = {}
    for split in given or ["all"]:
        base = path / split if given else path
        listed[split] = []
        for name in classes:
            folder = base / name
            found = []
            for f in sorted(folder.rglob("*")) if folder.is_dir() else []:
                if f.is_dir() or f.name.startswith("."):
                    continue
                info = header(f) if f.suffix.lower() in EXTENSIONS and f.is_file() else None  # a pipe would hang
                if info is None:
                    if strict:
                        raise DataUnavailable(f"data.root={root}: {f} is not a readable image "
                                              f"({', '.join(EXTENSIONS)}); remove it, or set data.strict=false to skip it")
                    skipped.append(str(f.relative_to(path)))
                    continue
                (w, h), mode = info
                sizes[(h, w)] += 1
                colour = colour or _has_colour(f, mode)
                found.append((f, index[name]))
            if not found and split in ("train", "all"):
                raise DataUnavailable(f"data.root={root}: class folder {folder} holds no images "
                                      f"({', '.join(EXTENSIONS)}); add some or remove the folder")
            listed[split] += found
    if skipped:
        log.warning("data.root=%s: skipped %d files that are not readable images: %s%s", root, len(skipped),
                    ", ".join(skipped[:5]), " …" if len(skipped) > 5 else "")
    return listed, sizes, colour


def stratified(items: List[Tuple[Path, int]], n_classes: int, val_fraction: float, test_fraction: float,
               seed: int) -> Dict[str, List[Tuple[Path, int]]]:
    """Seeded per-class splits: each class keeps the same fractions (at least one image in each
    split asked for), and at least one training image."""
    out: Dict[str, List[Tuple[Path, int]]] = {s: [] for s in SPLITS}
    rng = random.Random(seed)
    for c in range(n_classes):
        members = [it for it in items if it[1] == c]
        rng.shuffle(members)
        n_val = min(max(round(len(members) * val_fraction), int(val_fraction > 0)), max(len(members) - 1, 0))
        n_test = min(max(round(len(members) * test_fraction), int(test_fraction > 0)), max(len(members) - 1 - n_val, 0))
        out["val"] += members[:n_val]
        out["test"] += members[n_val:n_val + n_test]
        out["train"] += members[n_val + n_test:]
    return out


def header(path: Path) -> Optional[Tuple[Tuple[int, int], str]]:
    """((width, height), PIL mode) from the file's header, or None if it is not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size, im.mode
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def read_rgb(path: Path) -> "numpy.ndarray":
    """One file → uint8 array (3, height, width): the one decoder of every image cnnexp reads
    (data=folder, predict with either backend). Deeper grey as `_grey_8_bit` says: 16-bit by its
    top byte, 32-bit float as 0 … 1 (clipped), PIL's 32-bit integer container by what it holds.
    Palettes resolved, transparency laid on white paper. PIL and numpy, not torchvision.io:
    predict backend=onnx must not import torch."""
    import warnings

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                if im.mode.startswith("I") or im.mode == "F":
                    im = Image.fromarray(_grey_8_bit(im, np), "L")
                if im.mode in ("RGBA", "LA", "P", "PA", "RGBa", "La"):
                    im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im.convert("RGBA"))
                rgb = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        raise RunError(f"{path}: not a readable image ({str(e).splitlines()[0][:120]}); "
                       "replace or remove it") from None
    return rgb.transpose(2, 0, 1)


def _grey_8_bit(im, np) -> "numpy.ndarray":
    """A 16/32-bit grey image (PIL modes I;16…, I, F) → uint8. 16-bit by its top byte, float as
    0 … 1 (torchvision's to_dtype scaling). Mode I is PIL's 32-bit signed container, and what it
    holds is mostly narrower — a numpy int32 array of 8-bit values, a 16-bit PNG (Pillow before 11
    opened those as I) — so it is read at the narrowest of 8, 16 or 31 bits that holds its largest
    value: by its mode's range alone, such an image would read as black. Negative values are black."""
    if im.mode == "F":  # torchvision: × (256 − 0.001), truncated
        a = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0)
        return (a.clip(0.0, 1.0) * (256 - 1e-3)).astype(np.uint8)
    a = np.asarray(im).astype(np.int64).clip(0, None)
    if im.mode.startswith("I;16") or im.format == "PNG":
        bits = 16
    else:
        top = int(a.max(initial=0))
        bits = 8 if top < 1 << 8 else 16 if top < 1 << 16 else 31
    return (a.clip(0, (1 << bits) - 1) >> (bits - 8)).astype(np.uint8)


def to_channels(rgb, channels: int):
    """(3, H, W) uint8 → (channels, H, W): grey by torchvision's rgb_to_grayscale (float32
    weights, truncated), so a network trained on grey reads grey the same way everywhere."""
    import numpy as np

    if channels == 3:
        return rgb
    f = rgb.astype(np.float32)
    return (f[0] * np.float32(0.2989) + f[1] * np.float32(0.587) + f[2] * np.float32(0.114)).astype(np.uint8)[None]


def read_array(path: Path, channels: int, size) -> "numpy.ndarray":
    """One file → uint8 array (channels, height, width) at `size`: read_rgb, to_channels, and
    torch's antialiased resize (`resize`), width first as torch does."""
    image = to_channels(read_rgb(path), channels)
    return resize(resize(image, size[1], axis=2), size[0], axis=1)


def resize(a, n_out: int, axis: int):
    """torch's antialiased bilinear resize of uint8 images along one axis, in numpy: the same
    float64 filter weights rescaled to int16 with the same precision, the same rounding — so
    the pixels are torch's to the bit (PIL's 22-bit weights differ by a grey level here and there)."""
    import numpy as np

    n_in = a.shape[axis]
    if n_in == n_out:
        return a
    scale = n_in / n_out
    support, inverse = (scale, 1 / scale) if scale >= 1 else (1.0, 1.0)
    rows = []
    for i in range(n_out):
        center = scale * (i + 0.5)
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), n_in)
        w = np.maximum(0.0, 1 - np.abs((np.arange(lo, hi) - center + 0.5) * inverse))
        rows.append((lo, w / w.sum() if w.sum() else w))
    largest = max(w.max() for _, w in rows)
    bits = next((b for b in range(22) if int(0.5 + largest * (1 << (b + 1))) >= 1 << 15), 22)
    x = np.moveaxis(a, axis, 0).astype(np.int64)
    out = np.empty((n_out, *x.shape[1:]), np.uint8)
    for i, (lo, w) in enumerate(rows):
        weights = (w * (1 << bits) + 0.5).astype(np.int64)  # weights are ≥ 0: round half up
        out[i] = np.clip(((1 << (bits - 1)) + np.tensordot(weights, x[lo:lo + len(w)], axes=(0, 0))) >> bits, 0, 255)
    return np.moveaxis(out, 0, axis)


def _has_colour(path: Path, mode: str) -> bool:
    """RGB-like modes have colour; a palette image has it when its palette is not grey."""
    if mode in COLOUR_MODES:
        return True
    if mode in ("P", "PA"):
        from PIL import Image

        with Image.open(path) as im:
            palette = im.getpalette() or []
        return any(palette[i] != palette[i + 1] or palette[i] != palette[i + 2] for i in range(0, len(palette) - 2, 3))
    return False


def shape_of(folder: Folder, image_size, channels) -> Tuple[int, int, int]:
    """(C, H, W) the images are converted to: data.channels and data.image_size, or the folder's own."""
    c = (3 if folder.colour else 1) if channels == "auto" else int(channels)
    if image_size == "auto":
        h, w = folder.size
    elif isinstance(image_size, int):
        h = w = image_size
    else:
        h, w = image_size
    return c, h, w


def check_image_size(value) -> None:
    ok = value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1) or (
        isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) and v >= 1 for v in value))
    if not ok:
        raise SettingsError("data.image_size", value, "auto (the most common size in the folder), a side in "
                            "pixels ≥ 1 (e.g. 64: 64×64) or [height, width]")
