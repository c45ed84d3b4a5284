"""Float arrays held in memory as tensors — the DataModule of the data that is not images: series
(N×C×L), volumes (N×C×D×H×W) and Moving-MNIST clips. Each subclass's `load` returns its splits as
float32 arrays, already in the network's units (scaled by the dataset's stated rule); batches are
drawn by index through the shared in-memory loader (data/memory.py), as MNIST's are.
"""

from __future__ import annotations

import time
from typing import Dict, List, Optional, Tuple

import torch

from cnnexp.data.memory import InMemoryData


class ArrayData(InMemoryData):
    """Subclasses set `class_names` and implement `load() → {split: (x float32 numpy, y int64 numpy)}`."""

    class_names: List[str] = []

    def __init__(self, data_settings, seed: int):
        super().__init__(data_settings, seed)
        self.class_names = list(data_settings.classes or [])
        self.splits: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}

    def load(self) -> Dict[str, tuple]:
        raise NotImplementedError

    # what the TensorBoard views show (callbacks.views.ViewSource): the first test examples, the same in every run
    def samples(self, n: int) -> torch.Tensor:
        return self.splits["test"][0][:n]

    def to_input(self, x: torch.Tensor) -> torch.Tensor:
        return x  # already scaled when loaded

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """To [0, 1] for a picture: each example stretched between its own least and largest value."""
        flat = x.flatten(1)
        low, high = flat.min(1).values, flat.max(1).values
        shape = (-1, *[1] * (x.dim() - 1))
        return ((x - low.view(shape)) / (high - low).clamp_min(1e-8).view(shape)).clamp(0, 1)

    def setup(self, stage: Optional[str] = None) -> None:
        if self.splits:
            return
        started = time.perf_counter()
        for split, (x, y) in self.load().items():
            self.splits[split] = (torch.from_numpy(x).float(), torch.from_numpy(y).long())
        self.setup_seconds = time.perf_counter() - started


class SeriesDataModule(ArrayData):
    """data=series: the problem's files (data/series.py), split and scaled as it states."""

    def load(self):
        from cnnexp.data import series

        s = self.settings
        (xt, yt), (xs, ys), classes, _ = series.load(s, self.seed)
        rows = series.split_rows(yt, len(classes), s.val_fraction, self.seed)
        scaled = lambda x: series.prepare(x, s.scaling, s.mean, s.std)
        return {"train": (scaled(xt[rows["train"]]), yt[rows["train"]]), "val": (scaled(xt[rows["val"]]), yt[rows["val"]]),
                "test": (scaled(xs), ys)}
