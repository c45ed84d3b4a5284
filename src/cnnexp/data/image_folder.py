"""data=folder as a LightningDataModule: your own images, decoded once.

Each image is read by `images.read_array` — the one reader predict uses too — converted to
8 bits and to `data.channels` (16-bit scaled, palette resolved, transparency on white, colour
to grey by torchvision's luminance weights), and resized to `data.image_size` as torch resizes. When the decoded set
fits `data.memory_budget_mb` it is held in memory as uint8 and batched by index, as MNIST is;
otherwise a DataLoader with workers decodes batches from disk. Either way `to_float` turns uint8
into the float32 the network takes: per channel, with the mean and standard deviation of the
training split, computed once and recorded with the run (predict uses the same function).
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
from torch.utils.data import DataLoader, Dataset

from cnnexp.data import images
from cnnexp.data.memory import InMemoryData, to_float
from cnnexp.core.errors import RunError

log = logging.getLogger("cnnexp")
STATS_SAMPLE = 2000  # images the mean and std are estimated from when the set is streamed


def read_image(path: Path, channels: int, size: Sequence[int]) -> torch.Tensor:
    """One file → uint8 tensor (channels, height, width): images.read_array, the reader predict uses."""
    array = images.read_array(path, channels, size)
    return torch.from_numpy(array if array.flags.writeable else array.copy())  # torch warns of a read-only array


def channel_stats(data_settings) -> Tuple[torch.Tensor, torch.Tensor]:
    """The recorded per-channel mean and std, shaped (C, 1, 1) to broadcast over images."""
    return tuple(torch.tensor(v).view(-1, 1, 1) for v in (data_settings.mean, data_settings.std))


class FolderImages(Dataset):
    """Streaming: decode and convert on each access (in the loader's workers)."""

    def __init__(self, items: List[Tuple[Path, int]], shape, transform):
        self.items, self.shape, self.transform = items, shape, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, label = self.items[i]
        return self.transform(read_image(path, self.shape[0], self.shape[1:])), label


class FolderDataModule(InMemoryData):
    def __init__(self, data_settings, seed: int):
        super().__init__(data_settings, seed)
        self.class_names: List[str] = list(data_settings.classes or [])
        self.shape = (data_settings.channels, *data_settings.image_size)
        self.splits = {}
        self.streamed = False
        self.transform = None  # uint8 → the network's input, for a batch or a streamed image

    # what the TensorBoard views show (callbacks.views.ViewSource)
    def samples(self, n: int) -> torch.Tensor:
        x = self.splits["val"][0]
        if isinstance(x, torch.Tensor):
            return self.to_input(x[:n])
        return torch.stack([x[i][0] for i in range(min(n, len(x)))])

    def setup(self, stage: Optional[str] = None) -> None:
        if self.splits:
            return
        started = time.perf_counter()
        s = self.settings
        folder = images.scan(s.root, s.strict, s.val_fraction, s.test_fraction, self.seed)
        if folder.classes != self.class_names:
            raise RunError(f"data.root={s.root}: its class folders are now {folder.classes}, but this run was "
                           f"trained on {self.class_names}; point data.root at the run's own images")
        c, h, w = self.shape
        total = folder.count * c * h * w  # uint8, as decoded and held
        self.streamed = total > s.memory_budget_mb * 2**20
        decoded = {} if self.streamed else {k: self._decode(v) for k, v in folder.files.items()}
        if s.mean is None or s.std is None:
            x = decoded["train"][0] if decoded else self._decode(folder.files["train"][:STATS_SAMPLE])[0]
            x = to_float(x, normalize=False)
            s.mean = [round(float(v), 6) for v in x.mean(dim=(0, 2, 3))]
            s.std = [round(max(float(v), 1e-3), 6) for v in x.std(dim=(0, 2, 3))]
        self.mean, self.std = channel_stats(s)
        # a partial, not a method: the streaming workers get a copy without the trainer
        self.transform = functools.partial(to_float, normalize=s.normalize, mean=self.mean, std=self.std)
        for split, items in folder.files.items():
            self.splits[split] = (FolderImages(items, self.shape, self.transform), None) if self.streamed else decoded[split]
        how = (f"streamed from disk by {s.num_workers} loader workers (decoded, {total / 2**20:,.0f} MB would exceed "
               f"data.memory_budget_mb={s.memory_budget_mb})" if self.streamed else f"held in memory ({total / 2**20:,.1f} MB)")
        log.info("data: %s — %d classes, %s images (train %d, val %d, test %d) as %d×%d×%d, %s", s.root,
                 len(folder.classes), f"{folder.count:,}", *(len(folder.files[k]) for k in images.SPLITS), c, h, w, how)
        self.setup_seconds = time.perf_counter() - started

    def _decode(self, items: List[Tuple[Path, int]]) -> Tuple[torch.Tensor, torch.Tensor]:
        c, h, w = self.shape
        x = torch.empty((len(items), c, h, w), dtype=torch.uint8)
        for i, (path, _) in enumerate(items):
            x[i] = read_image(path, c, (h, w))
        return x, torch.tensor([label for _, label in items], dtype=torch.long)

    def _loader(self, split: str, train: bool):
        x, y = self.splits[split]
        if self.streamed:
            return DataLoader(x, batch_size=self.settings.batch_size if train else self.settings.eval_batch_size,
                              shuffle=train, drop_last=train, num_workers=self.settings.num_workers,
                              persistent_workers=self.settings.num_workers > 0)
        return self.loader(x, y, None, train, transform=self.transform)

