"""MNIST as a LightningDataModule: the 70,000 images decoded once into uint8 tensors (55 MB; a
sweep's jobs share them, and the training and validation splits are rows of the same tensor, not
copies), then batched by index through the shared in-memory layer (data/memory.py).
"""

from __future__ import annotations

import functools
import time
from typing import Optional, Tuple

import torch

from cnnexp.data import idx
from cnnexp.data import memory
from cnnexp.data.memory import InMemoryData
from cnnexp.data.sources import ensure_mnist

MEAN, STD = 0.1307, 0.3081  # of the MNIST training pixels in [0, 1]


def to_float(images: torch.Tensor, normalize: bool, mean=MEAN, std=STD) -> torch.Tensor:
    """memory.to_float with MNIST's mean and std: what an MNIST network takes."""
    return memory.to_float(images, normalize, mean, std)


def load_split(root, train: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 N×1×H×W, one idx.IMAGE_SHAPE each; labels int64 N) from verified files under
    root/MNIST/raw; decoded once per process (the jobs of a sweep share them), again only if the
    files change."""
    raw = idx.raw_dir(root)
    stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(raw.glob("*")) if p.is_file())
    return _decoded(str(root), train, stamp)


@functools.lru_cache(maxsize=4)
def _decoded(root: str, train: bool, stamp: tuple) -> Tuple[torch.Tensor, torch.Tensor]:
    prefix = "train" if train else "t10k"
    tensors = []
    for kind, offset in (("images-idx3-ubyte", 16), ("labels-idx1-ubyte", 8)):
        _, data = idx.read_local(root, f"{prefix}-{kind}")
        tensors.append(torch.frombuffer(data, dtype=torch.uint8, offset=offset))  # the read buffer itself, no copy
    images, labels = tensors
    return images.view(-1, *idx.IMAGE_SHAPE), labels.long()


class MNISTDataModule(InMemoryData):
    class_names = [str(d) for d in range(10)]
    mean, std = MEAN, STD

    def __init__(self, data_settings, seed: int):
        super().__init__(data_settings, seed)
        self.images = self.labels = self.train_rows = self.val_rows = self.test_x = self.test_y = None

    # what the TensorBoard views show (callbacks.views.ViewSource): the first test digits, the same
    # in every run whatever its seed (the validation split is the seed's), so runs compare image by image
    def samples(self, n: int) -> torch.Tensor:
        return self.to_input(self.test_x[:n])

    def prepare_data(self) -> None:
        ensure_mnist(self.settings)

    def setup(self, stage: Optional[str] = None) -> None:
        if self.images is not None:
            return
        started = time.perf_counter()
        s = self.settings
        self.images, self.labels = load_split(s.root, train=True)  # uint8, shared: see the module's docstring
        split = torch.randperm(len(self.images), generator=torch.Generator().manual_seed(self.seed))
        self.val_rows, self.train_rows = split[: s.val_size], split[s.val_size :]
        self.test_x, self.test_y = load_split(s.root, train=False)
        self.setup_seconds = time.perf_counter() - started

    def train_dataloader(self):
        self.images, self.labels = self.on_device(self.images, self.labels)
        return self.loader(self.images, self.labels, self.train_rows, train=True)

    def val_dataloader(self):
        self.images, self.labels = self.on_device(self.images, self.labels)
        return self.loader(self.images, self.labels, self.val_rows, train=False)

    def test_dataloader(self):
        self.test_x, self.test_y = self.on_device(self.test_x, self.test_y)
        return self.loader(self.test_x, self.test_y, None, train=False)
