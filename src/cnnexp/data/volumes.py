"""data=volumes: a folder of class subfolders of .npy volumes, C×D×H×W (or D×H×W: one channel),
split as data=folder splits images (train/ val/ test/ folders, else seeded per-class fractions:
data/images.py). Without torch the settings check reads only each file's .npy header, so every
shape is known at once: the most common one is the data's, and a volume of another shape is
refused by name, as is a file cut short or a header claiming more than the file holds. Links in
the folder are followed, as data=folder follows them for images: the data folder is the user's own
(what a file holds is named in an error, never echoed). Normalisation: per channel, with the training split's mean and std (recorded).
"""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple

from cnnexp.core.errors import DataUnavailable
from cnnexp.data.facts import DataFacts, fractions, require
from cnnexp.data.images import SPLITS, _layout, stratified


def header(path: Path) -> Tuple[Tuple[int, ...], str]:
    """(shape, dtype) from an .npy file's header, checked against the file's size (data/npy.py); no value read."""
    from cnnexp.data import npy

    shape, dtype = npy.npy_header(path)
    if dtype.kind not in "iuf":
        raise DataUnavailable(f"{path}: holds {dtype}, not real numbers; save the volume as a float or integer array")
    return tuple(shape), str(dtype)


def as_cdhw(shape: Tuple[int, ...]) -> Tuple[int, ...]:
    return (1, *shape) if len(shape) == 3 else shape


def scan(root: str, val_fraction: float, test_fraction: float, seed: int):
    path = Path(root).expanduser()
    stamp = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in path.iterdir())) if path.is_dir() else None
    return _scan(str(path), root, stamp, val_fraction, test_fraction, seed)


@functools.lru_cache(maxsize=4)
def _scan(path: str, root: str, stamp, val_fraction: float, test_fraction: float, seed: int):
    """(classes, {split: [(file, class)]}, shape C×D×H×W): every volume's header read and checked."""
    path = Path(path)
    given, classes = _layout(path, root, "volumes")
    listed: Dict[str, List[Tuple[Path, int]]] = {}
    shapes: Dict[Path, Tuple[int, ...]] = {}
    for split in given or ["all"]:
        listed[split] = []
        for c, name in enumerate(classes):
            folder = (path / split if given else path) / name
            files = sorted(f for f in folder.rglob("*.npy") if f.is_file()) if folder.is_dir() else []
            if not files and split in ("train", "all"):
                raise DataUnavailable(f"data.root={root}: class folder {folder} holds no .npy volumes; "
                                      "add some or remove the folder")
            for f in files:
                shape, _ = header(f)
                if len(shape) not in (3, 4):
                    raise DataUnavailable(f"{f}: a {len(shape)}-D array {'×'.join(map(str, shape))}; a volume "
                                          "is C×D×H×W or D×H×W")
                shapes[f] = as_cdhw(shape)
                listed[split].append((f, c))
    common = Counter(shapes.values()).most_common(1)[0][0]
    for f, shape in shapes.items():
        if shape != common:
            raise DataUnavailable(f"{f}: a volume of {'×'.join(map(str, shape))}, but its neighbours are "
                                  f"{'×'.join(map(str, common))} (C×D×H×W); resample or remove it")
    files = {s: listed.get(s, []) for s in SPLITS}
    missing = [s for s in ("val", "test") if not listed.get(s)]
    carved = stratified(listed["train" if given else "all"], len(classes),
                        val_fraction if "val" in missing else 0.0, test_fraction if "test" in missing else 0.0, seed)
    files["train"] = carved["train"]
    for s in missing:
        files[s] = carved[s]
    return classes, files, common


def facts(d, seed: int, test_after_fit: bool) -> DataFacts:
    require(d.root not in (None, "???"), "data.root", d.root, "the folder of class folders of .npy volumes")
    fractions(d)
    for key in ("mean", "std"):
        value = getattr(d, key)
        require(value is None or all(v > 0 or key == "mean" for v in value), f"data.{key}", value,
                "null (computed from the training volumes) or one number per channel")
    classes, files, shape = scan(d.root, d.val_fraction, d.test_fraction, seed)
    require(d.classes is None or list(d.classes) == classes, "data.classes", d.classes,
            f"the class folders are {classes}; leave data.classes=null")
    require(files["val"], "data.val_fraction", d.val_fraction, "a fraction that leaves a validation volume, "
            "or a val/ folder")
    require(files["test"] or not test_after_fit, "data.test_fraction", d.test_fraction,
            "leaves no test volume, and the run tests its best checkpoint when it ends; give a fraction > 0, "
            "add a test/ folder, or test_after_fit=false")
    d.shape, d.classes = list(shape), list(classes)
    return DataFacts(tuple(shape), list(classes), len(files["train"]), f"data.root={d.root}")


def read(items, shape):
    """[(file, class)] → (float32 N×C×D×H×W, int64 N), each volume checked as data/npy.py checks arrays."""
    import numpy as np

    from cnnexp.data import npy

    x = np.empty((len(items), *shape), np.float32)
    for i, (f, _) in enumerate(items):
        x[i] = npy.numbers(str(f), npy.load_npy(f)).reshape(shape)
    return x, np.array([c for _, c in items], np.int64)


def make(settings):
    from cnnexp.data.arrays import ArrayData

    class VolumesDataModule(ArrayData):
        def load(self):
            s = self.settings
            _, files, shape = scan(s.root, s.val_fraction, s.test_fraction, self.seed)
            split = {k: read(v, shape) for k, v in files.items() if v}
            if s.mean is None or s.std is None:
                x = split["train"][0]
                s.mean = [round(float(v), 6) for v in x.mean(axis=(0, 2, 3, 4))]
                s.std = [round(max(float(v), 1e-6), 6) for v in x.std(axis=(0, 2, 3, 4))]
            return {k: (scale(x, s), y) for k, (x, y) in split.items()}

    return VolumesDataModule(settings.data, seed=settings.seed)


def scale(x, s):
    """Per channel (x − mean) / std when data.normalize (predict uses it too)."""
    import numpy as np

    if not s.normalize:
        return x
    view = (-1, *[1] * (x.ndim - 2))
    return ((x - np.asarray(s.mean, np.float32).reshape(view)) / np.asarray(s.std, np.float32).reshape(view)).astype(np.float32)


def sizes(d, seed: int):
    files = scan(d.root, d.val_fraction, d.test_fraction, seed)[1]
    return tuple(len(files[k]) for k in ("train", "val", "test"))
