"""Epoch wall time and training images per second, logged as scalars.

Lightning's ThroughputMonitor logs only every log_every_n_steps (nothing in a short run) and
keeps its totals private; the run's images/s and its first-step time need both.
"""

from __future__ import annotations

import time

import lightning as L


class Throughput(L.Callback):
    def __init__(self):
        self.images = 0
        self.started = 0.0
        self.train_seconds = 0.0  # training steps only, all epochs: the run's images/s
        self.train_images = 0
        self.first_step_unix = None  # wall clock of the first training step: startup = this − launch
        self.last_step_unix = None   # … and the end of the last: training time = last − first

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.images, self.started = 0, time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.first_step_unix is None:
            self.first_step_unix = time.time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.images += len(batch[1])
        self.last_step_unix = time.time()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        seconds = time.perf_counter() - self.started
        self.train_seconds += seconds
        self.train_images += self.images
        # this process's share; under DDP rank 0 speaks for itself (all ranks run in step)
        pl_module.log("time/epoch_s", seconds, on_epoch=True, rank_zero_only=True)
        pl_module.log("train/images_per_s", self.images / max(seconds, 1e-9), on_epoch=True, rank_zero_only=True)

    @property
    def train_s(self) -> float | None:
        """First training step to last, wall clock (validation between epochs included)."""
        return None if self.first_step_unix is None else self.last_step_unix - self.first_step_unix

    @property
    def images_per_s(self) -> float:
        return self.train_images / self.train_seconds if self.train_seconds else 0.0
