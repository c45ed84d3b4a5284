"""data=series, without torch: a folder holding one problem's training and test files, read into
float32 arrays N×C×L with their labels, and the facts the settings check needs.

    data.root/GunPoint_TRAIN.ts   GunPoint_TEST.ts                 the UCR/UEA .ts format (data/ts.py)
    data.root/Wafer_TRAIN.npz     Wafer_TEST.npz                   arrays x (N×L or N×C×L) and y (N labels)
    data.root/Wafer_TRAIN_X.npy   Wafer_TRAIN_y.npy  (…_TEST_…)     the same as .npy pairs

Class names come from the file: @classLabel's order for .ts, else the sorted distinct labels (or
an npz's own `classes` array). Every series is padded at its end to the set's longest
(`data.length`, recorded); the validation split is carved out of the training file per class
(seeded, data.val_fraction), the test split is the _TEST file. Normalisation (`prepare`, the one
function training and predict both use): `data.scaling=channel` subtracts each channel's mean
and divides by its std over the training split (recorded as data.mean/std); `series` z-normalises
each series by its own mean and std per channel (the UCR archive's convention). Padding and
interpolated gaps are filled after it: padded steps are 0.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import List, Optional, Tuple

from cnnexp.core.errors import DataUnavailable
from cnnexp.data import npy, ts
from cnnexp.data.facts import DataFacts, require

KINDS = (".ts", ".npz", "_X.npy")
SCALINGS = ("channel", "series", "none")


def problem_files(root: str, problem: str) -> Tuple[Path, Path]:
    """(train file, test file) of data.problem (auto: the one problem the folder holds)."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataUnavailable(f"data.root={root}: no such folder; give a folder holding <Name>_TRAIN.ts and "
                              "<Name>_TEST.ts (or .npz)")
    found = sorted({f.name.split("_TRAIN")[0] for f in path.iterdir()
                    if "_TRAIN" in f.name and f.name.endswith((".ts", ".npz", "_X.npy"))})
    if problem == "auto":
        if len(found) != 1:
            raise DataUnavailable(f"data.root={root}: {'no' if not found else len(found)} problems "
                                  f"({', '.join(found) or 'no <Name>_TRAIN.ts, .npz or _X.npy'}); "
                                  + ("name one: data.problem=NAME" if found else "put the set's files there"))
        problem = found[0]
    for kind in KINDS:
        train, test = path / f"{problem}_TRAIN{kind}", path / f"{problem}_TEST{kind}"
        if train.is_file():
            if not test.is_file():
                raise DataUnavailable(f"data.root={root}: {train.name} has no {test.name} beside it; "
                                      "the test split is the problem's own _TEST file")
            return train, test
    raise DataUnavailable(f"data.root={root}: no {problem}_TRAIN.ts, .npz or _X.npy (problems here: "
                          f"{', '.join(found) or 'none'}); check data.problem")


def read(path: Path, classes: Optional[List[str]] = None):
    """One file → (float32 N×C×L with NaN padding, int64 labels, class names)."""
    stat = path.stat()
    return _read(str(path), stat.st_mtime_ns, stat.st_size, tuple(classes) if classes else None)


@functools.lru_cache(maxsize=8)
def _read(path: str, mtime: int, size: int, classes):
    import numpy as np

    path = Path(path)
    if path.suffix == ".ts":
        cases = ts.parse(path)
        names = classes or tuple(cases.classes)
        _same_classes(path, cases.classes, names)
        x = ts.to_array(cases, cases.longest)
        y = np.array([names.index(label) for label in cases.labels], np.int64)
        return x, y, list(names)
    x, labels, own = _arrays(path, np)
    names = classes or own or tuple(sorted({str(v) for v in labels}, key=_label_order))
    unknown = sorted({str(v) for v in labels} - set(names))
    if unknown:
        raise DataUnavailable(f"{path}: labels {', '.join(unknown[:5])} are not among the classes "
                              f"{', '.join(names)}; the test file holds the training file's classes")
    return x, np.array([list(names).index(str(v)) for v in labels], np.int64), list(names)


def _label_order(name: str):
    return (0, float(name), name) if _numeric(name) else (1, 0.0, name)


def _numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _same_classes(path: Path, own: List[str], names) -> None:
    if list(own) != list(names) and not set(own) <= set(names):
        raise DataUnavailable(f"{path}: @classLabel {' '.join(own)} differs from the training file's "
                              f"{' '.join(names)}; the two files of a problem share their classes")


def _arrays(path: Path, np):
    """x (N×C×L float32) and labels from an .npz, or an _X.npy with its _y.npy; every array read and
    checked by data/npy.py (real, finite in float32, no NaN: arrays have no gaps)."""
    if path.suffix == ".npz":
        z = npy.load_npz(path)
        if "x" not in z or "y" not in z:
            raise DataUnavailable(f"{path}: holds {', '.join(z) or 'no arrays'}; an .npz of a series set holds "
                                  "x (N×L or N×C×L) and y (N labels)")
        x, y = z["x"], z["y"]
        own = tuple(str(c) for c in z["classes"].reshape(-1)) if "classes" in z else None
        if own is not None and len(set(own)) != len(own):
            raise DataUnavailable(f"{path}: its classes array names a class twice ({', '.join(own)}); "
                                  "name each class once")
    else:
        labels = path.with_name(path.name[: -len("_X.npy")] + "_y.npy")
        if not labels.is_file():
            raise DataUnavailable(f"{path}: no {labels.name} beside it; the labels are an _y.npy of N entries")
        x, y, own = npy.load_npy(path), npy.load_npy(labels), None
    if x.ndim == 2:
        x = x[:, None, :]
    x = npy.numbers(str(path), x, ("case", "channel", "step") if x.ndim == 3 else ())
    if y.ndim != 1 or x.ndim != 3 or len(x) != len(y):
        raise DataUnavailable(f"{path}: x is {'×'.join(map(str, x.shape)) or 'a scalar'} with labels of shape "
                              f"{'×'.join(map(str, y.shape)) or 'a scalar'}; give numbers N×L or N×C×L and N labels")
    if y.dtype.kind in "VOcMm":
        raise DataUnavailable(f"{path}: labels are {y.dtype}; give N integer or text labels")
    return x, y, own


def load(d, seed: int):
    """(train x, y), (test x, y), classes, length: the problem's two files, padded to one length."""
    import numpy as np

    train_file, test_file = problem_files(d.root, d.problem)
    xt, yt, classes = read(train_file, d.classes)
    xs, ys, _ = read(test_file, classes)
    if xt.shape[1] != xs.shape[1]:
        raise DataUnavailable(f"{test_file}: {xs.shape[1]} dimensions, but {train_file.name} has {xt.shape[1]}; "
                              "the two files of a problem hold the same dimensions")
    length = d.length if isinstance(d.length, int) else max(xt.shape[2], xs.shape[2])
    pad = lambda x, f: np.pad(x, ((0, 0), (0, 0), (0, length - x.shape[2])), constant_values=np.nan) \
        if x.shape[2] <= length else _too_long(f, x, length)
    return (pad(xt, train_file), yt), (pad(xs, test_file), ys), classes, length


def _too_long(path: Path, x, length: int):
    raise DataUnavailable(f"{path}: series {x.shape[2]} steps long, but data.length={length}; "
                          f"give data.length=auto (the longest) or ≥ {x.shape[2]}")


def channel_stats(x) -> Tuple[List[float], List[float]]:
    """Per-channel mean and std of N×C×L series over their real (not padded) steps."""
    import numpy as np

    mean = np.nanmean(x, axis=(0, 2))
    std = np.nanstd(x, axis=(0, 2))
    return [round(float(v), 6) for v in mean], [round(max(float(v), 1e-6), 6) for v in std]


def prepare(x, scaling: str, mean=None, std=None):
    """N×C×L float32 with NaN where padded → the network's input: scaled (see the module's
    docstring), then the padding set to 0. numpy only: training and predict share it."""
    import numpy as np

    x = x.astype(np.float32, copy=True)
    if scaling == "channel":
        x = (x - np.asarray(mean, np.float32)[:, None]) / np.asarray(std, np.float32)[:, None]
    elif scaling == "series":
        with np.errstate(all="ignore"):
            m, s = np.nanmean(x, axis=2, keepdims=True), np.nanstd(x, axis=2, keepdims=True)
        x = (x - np.nan_to_num(m)) / np.where(np.nan_to_num(s) > 1e-8, s, 1.0)
    return np.nan_to_num(x, nan=0.0).astype(np.float32)


def facts(d, seed: int, test_after_fit: bool) -> DataFacts:
    """data=series: the files read (and cached for the data module), the splits counted; length,
    channels, classes and the training split's statistics recorded as the run's own values."""
    require(d.root not in (None, "???"), "data.root", d.root,
            "the folder of a problem's <Name>_TRAIN.ts and <Name>_TEST.ts, e.g. data.root=~/ucr/GunPoint")
    require(0.0 < d.val_fraction < 1.0, "data.val_fraction", d.val_fraction, "a fraction in (0, 1), e.g. 0.2")
    require(d.scaling in SCALINGS, "data.scaling", d.scaling, f"one of {', '.join(SCALINGS)}")
    require(d.length == "auto" or (isinstance(d.length, int) and d.length >= 1), "data.length", d.length,
            "auto (the longest series of the set) or a number of steps ≥ 1")
    import numpy as np

    (xt, yt), (xs, _), classes, length = load(d, seed)
    require(len(classes) >= 2, "data.root", d.root, f"a set of at least two classes (it has {classes})")
    present = [classes[i] for i in sorted(set(int(v) for v in yt))]
    require(len(present) >= 2, "data.root", d.root, f"a training file holding cases of at least two classes "
            f"({train_name(d)} holds only {', '.join(present) or 'none'})")
    splits = split_rows(yt, len(classes), d.val_fraction, seed)
    require(len(splits["val"]) > 0, "data.val_fraction", d.val_fraction, "a fraction that leaves a validation case")
    if d.scaling == "channel" and (d.mean is None or d.std is None):
        d.mean, d.std = channel_stats(xt[splits["train"]])
    name = d.problem if d.problem != "auto" else problem_files(d.root, "auto")[0].name.split("_TRAIN")[0]
    d.problem, d.length, d.channels, d.classes = name, int(length), int(xt.shape[1]), list(classes)
    d.padded = bool(np.isnan(xt[:, 0, -1]).any() or np.isnan(xs[:, 0, -1]).any())
    return DataFacts((int(xt.shape[1]), int(length)), list(classes), len(splits["train"]), f"data.root={d.root} ({name})")


def train_name(d) -> str:
    return problem_files(d.root, d.problem)[0].name


def split_rows(y, n_classes: int, val_fraction: float, seed: int):
    """{train, val}: row indices of the training file, carved per class and seeded as data=folder carves."""
    import numpy as np

    from cnnexp.data.images import stratified

    carved = stratified([(i, int(c)) for i, c in enumerate(y)], n_classes, val_fraction, 0.0, seed)
    return {k: np.array(sorted(i for i, _ in carved[k]), np.int64) for k in ("train", "val")}


def sizes(d, seed: int):
    """(train, val, test) cases: the training file's carved splits and the test file."""
    (_, y), (_, y_test), classes, _ = load(d, seed)
    rows = split_rows(y, len(classes), d.val_fraction, seed)
    return len(rows["train"]), len(rows["val"]), len(y_test)
