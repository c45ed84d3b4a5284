"""data=moving_mnist: clips of one MNIST digit moving and bouncing inside square frames, labelled by
the digit — 3-D convolutions over (time, height, width).

The Moving-MNIST recipe (Srivastava et al. 2015), made here from MNIST's own files and
data.clip_seed, so every run and machine sees the same clips: each clip picks a digit, a start
position uniform in the frame, a direction uniform in [0, 2π) and a speed uniform in [2, 5)
pixels a frame; at an edge the digit bounces (its position reflected, that velocity component
reversed). Training clips use MNIST training digits outside the data.val_size validation digits
(split by data.clip_seed), validation clips those, test clips MNIST's test digits. Held as uint8
N×1×T×S×S; a batch is scaled to [0, 1] and, with data.normalize, by the training clips' mean and
std (computed once from the seeded clips, so the same everywhere).
"""

from __future__ import annotations

import math

from cnnexp.data.facts import DataFacts, mnist_sources, require

DIGIT = 28


def clips(images, n: int, frames: int, size: int, seed: int):
    """(uint8 N×1×frames×size×size, the index of each clip's digit in `images` (N×28×28 uint8))."""
    import numpy as np

    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(images), n)
    room = size - DIGIT
    pos = rng.uniform(0, room, (n, 2))
    angle, speed = rng.uniform(0, 2 * math.pi, n), rng.uniform(2, 5, n)
    velocity = np.stack([np.sin(angle), np.cos(angle)], 1) * speed[:, None]
    out = np.zeros((n, 1, frames, size, size), np.uint8)
    digits = images[pick]                                   # N×28×28
    span = np.arange(DIGIT)
    which = np.arange(n)[:, None, None]
    for t in range(frames):
        r, c = np.rint(pos).astype(int).T                  # top-left corners, in the frame
        rows, cols = (r[:, None] + span)[:, :, None], (c[:, None] + span)[:, None, :]
        out[which, 0, t, rows, cols] = digits              # N×28×28 pasted at once
        pos += velocity
        for axis in (0, 1):                                 # bounce: reflect at 0 and at `room`
            low, high = pos[:, axis] < 0, pos[:, axis] > room
            pos[low, axis] = -pos[low, axis]
            pos[high, axis] = 2 * room - pos[high, axis]
            velocity[low | high, axis] *= -1
    return out, pick


def facts(d, seed: int, test_after_fit: bool) -> DataFacts:
    mnist_sources(d)
    require(isinstance(d.frames, int) and 1 <= d.frames <= 100, "data.frames", d.frames, "an integer in [1, 100]")
    require(isinstance(d.size, int) and DIGIT <= d.size <= 256, "data.size", d.size,
            f"a frame side in [{DIGIT}, 256] pixels (a digit is {DIGIT})")
    for key in ("train_clips", "val_clips", "test_clips"):
        require(isinstance(getattr(d, key), int) and getattr(d, key) >= 1, f"data.{key}", getattr(d, key), "an integer ≥ 1")
    require(isinstance(d.clip_seed, int) and d.clip_seed >= 0, "data.clip_seed", d.clip_seed, "an integer ≥ 0")
    _fits_memory(d)
    return DataFacts((1, d.frames, d.size, d.size), [str(digit) for digit in range(10)], d.train_clips,
                     f"Moving MNIST ({d.frames} frames of {d.size}×{d.size})")


def _fits_memory(d) -> None:
    """The clips are made and held in memory (uint8): refused here, before any run folder, when they cannot be."""
    from cnnexp.data.npy import mem_available

    need = (d.train_clips + d.val_clips + d.test_clips) * d.frames * d.size * d.size
    free = mem_available()
    require(free is None or need <= free, "data.train_clips", d.train_clips,
            f"clips that fit in memory: {d.train_clips + d.val_clips + d.test_clips:,} clips of {d.frames}×{d.size}×"
            f"{d.size} need {need / 2**30:.1f} GiB, {free / 2**30 if free else 0:.1f} GiB is free; fewer clips, "
            "frames or a smaller data.size")


def sizes(d, seed: int):
    return d.train_clips, d.val_clips, d.test_clips


def make(settings):
    import numpy as np
    import torch

    from cnnexp.data.memory import InMemoryData, to_float
    from cnnexp.data.mnist import load_split
    from cnnexp.data.sources import ensure_mnist

    class MovingMNISTDataModule(InMemoryData):
        class_names = [str(digit) for digit in range(10)]

        def __init__(self, data_settings, seed: int):
            super().__init__(data_settings, seed)
            self.splits = {}

        def samples(self, n: int) -> torch.Tensor:
            return self.to_input(self.splits["test"][0][:n])

        def prepare_data(self) -> None:
            ensure_mnist(self.settings)

        def setup(self, stage=None) -> None:
            if self.splits:
                return
            s = self.settings
            images, labels = load_split(s.root, train=True)
            order = np.random.default_rng(s.clip_seed).permutation(len(images))
            sources = {"train": order[s.val_size:], "val": order[: s.val_size]}
            test_images, test_labels = load_split(s.root, train=False)
            for k, (x, y, rows, n) in {"train": (images, labels, sources["train"], s.train_clips),
                                       "val": (images, labels, sources["val"], s.val_clips),
                                       "test": (test_images, test_labels, np.arange(len(test_images)), s.test_clips)}.items():
                made, pick = clips(x[rows, 0].numpy(), n, s.frames, s.size, s.clip_seed + {"train": 0, "val": 1, "test": 2}[k])
                self.splits[k] = (torch.from_numpy(made), y[torch.from_numpy(rows[pick])])
            first = to_float(self.splits["train"][0][:512], normalize=False)
            self.mean, self.std = float(first.mean()), max(float(first.std()), 1e-3)

    return MovingMNISTDataModule(settings.data, seed=settings.seed)
