"""What each data name holds, known before torch is imported: one facts function per `data.name`,
found through `FACTS`, the one place that lists them. The settings check (config/validate.py) asks
here; each function checks its own data settings (each refusal naming the flag), reads headers or
files as it must, records what `auto` decides (classes, shape, statistics), and answers a
`DataFacts`. Adding a dataset: its settings dataclass in config/schema.py, its conf/data/ file,
its facts function here, its DataModule in `make_datamodule`.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, List, NamedTuple, Tuple

from cnnexp.core.errors import SettingsError


class DataFacts(NamedTuple):
    """What the data holds, as the checks of the model and the trainer need it."""
    shape: Tuple[int, ...]  # one example: [channels, *spatial] — L, H×W or D×H×W
    classes: List[str]
    train_split: int        # examples in the training split
    source: str             # what to call the data in a message


# data.name → "module:function" (imported only when asked: each reads its own files, some need numpy)
FACTS = {
    "mnist": "cnnexp.data.facts:mnist",
    "folder": "cnnexp.data.facts:folder",
    "series": "cnnexp.data.series:facts",
    "seqmnist": "cnnexp.data.seqmnist:facts",
    "volumes": "cnnexp.data.volumes:facts",
    "moving_mnist": "cnnexp.data.moving_mnist:facts",
}
FROM_MNIST = ("mnist", "seqmnist", "moving_mnist")  # the data made from MNIST's files (fetched before a run starts)


def facts_of(name: str) -> Callable[..., DataFacts]:
    module, _, function = FACTS[name].partition(":")
    return getattr(importlib.import_module(module), function)


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise SettingsError(key, value, allowed)


MNIST_SOURCES = ("local", "mirrors", "wheel")  # where the digits may come from (data/sources.py)


def mnist_sources(d) -> None:
    """The keys MNIST, seqmnist and moving_mnist share: the validation size and where the digits come from."""
    from cnnexp.data.idx import TRAIN_IMAGES

    require(1 <= d.val_size < TRAIN_IMAGES, "data.val_size", d.val_size, f"an integer in [1, {TRAIN_IMAGES})")
    require(d.download_timeout > 0, "data.download_timeout", d.download_timeout, "a number of seconds > 0")
    for i, src in enumerate(d.sources):
        require(src in MNIST_SOURCES, f"data.sources.{i}", src, f"one of {', '.join(MNIST_SOURCES)}")


def mnist(d, seed: int, test_after_fit: bool) -> DataFacts:
    from cnnexp.data.idx import IMAGE_SHAPE, TRAIN_IMAGES

    mnist_sources(d)
    return DataFacts(IMAGE_SHAPE, [str(digit) for digit in range(10)], TRAIN_IMAGES - d.val_size, "MNIST")


def fractions(d) -> None:
    """data.val_fraction and data.test_fraction of the sets that carve their own splits."""
    require(0.0 < d.val_fraction < 1.0, "data.val_fraction", d.val_fraction, "a fraction in (0, 1), e.g. 0.1")
    require(0.0 <= d.test_fraction < 1.0 and d.val_fraction + d.test_fraction < 1.0, "data.test_fraction",
            d.test_fraction, "a fraction in [0, 1) that leaves examples to train on with data.val_fraction")


def folder(d, seed: int, test_after_fit: bool) -> DataFacts:
    """data=folder: the folder is scanned (headers only), and what it holds is recorded as
    effective values — image size, channels, classes."""
    from cnnexp.data import images

    images.check_image_size(d.image_size)
    require(d.channels in ("auto", 1, 3), "data.channels", d.channels, "auto, 1 (greyscale) or 3 (colour)")
    fractions(d)
    require(d.memory_budget_mb >= 0, "data.memory_budget_mb", d.memory_budget_mb, "megabytes ≥ 0 (0: always stream)")
    require(d.num_workers >= 0, "data.num_workers", d.num_workers, "an integer ≥ 0")
    require(d.root not in (None, "???"), "data.root", d.root, "the folder of your images, e.g. data.root=~/datasets/leaves")
    for key in ("mean", "std"):
        value = getattr(d, key)
        require(value is None or (len(value) in (1, 3) and all(v > 0 or key == "mean" for v in value)),
                f"data.{key}", value, "null (computed from the training images) or one number per channel")
    source = f"data.root={d.root}"
    if d.classes and d.channels != "auto" and isinstance(d.image_size, list):
        # a recorded run (resume, eval, predict): its own record; the data module checks the folder when it reads it
        return DataFacts((d.channels, *d.image_size), list(d.classes), d.batch_size, source)
    found = images.scan(d.root, d.strict, d.val_fraction, d.test_fraction, seed)
    require(d.classes is None or list(d.classes) == found.classes, "data.classes", d.classes,
            f"the class folders are {found.classes}; leave data.classes=null")
    require(found.files["test"] or not test_after_fit, "data.test_fraction", d.test_fraction,
            "leaves no test image, and the run tests its best checkpoint when it ends; give a fraction > 0 "
            "(e.g. 0.1), add a test/ folder, or test_after_fit=false")
    shape = images.shape_of(found, d.image_size, d.channels)
    d.channels, d.image_size, d.classes = shape[0], [shape[1], shape[2]], list(found.classes)
    return DataFacts(shape, found.classes, len(found.files["train"]), source)


def sizes_of(name: str) -> Callable[..., Tuple[int, int, int]]:
    """(train, val, test) examples of data `name`, for the cost estimate: each module's `sizes`,
    from the same scans its facts made (cached)."""
    module, _, _ = FACTS[name].partition(":")
    return getattr(importlib.import_module(module), "mnist_sizes" if name == "mnist" else
                   "folder_sizes" if name == "folder" else "sizes")


def mnist_sizes(d, seed: int) -> Tuple[int, int, int]:
    from cnnexp.data.idx import TEST_IMAGES, TRAIN_IMAGES

    return TRAIN_IMAGES - d.val_size, d.val_size, TEST_IMAGES


def folder_sizes(d, seed: int) -> Tuple[int, int, int]:
    from cnnexp.data import images

    files = images.scan(d.root, d.strict, d.val_fraction, d.test_fraction, seed).files
    return tuple(len(files[k]) for k in ("train", "val", "test"))
