"""Where a run's time goes: epoch wall time and training images per second (logged as scalars),
the split of the whole job — data setup, training steps, validation, test, TensorBoard views,
checkpoints — and the training seconds at which validation accuracy first reached 99.0, 99.2,
99.4 and 99.5 % (`time_to`), recorded in results.json.

Lightning's ThroughputMonitor logs only every log_every_n_steps (nothing in a short run) and
keeps its totals private, and its Timer times whole stages; the split and the run's images/s
need more than either.
"""

from __future__ import annotations

import functools
import time
from typing import Dict

import lightning as L

from cnnexp.core.catalogue import TASKS


def timed(hook):
    """Adds the hook's duration to its callback's `seconds`, by stage (views report what they cost)."""
    stage = "validation" if "_validation_" in hook.__name__ else "test" if "_test_" in hook.__name__ else "fit"

    @functools.wraps(hook)
    def wrapper(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return hook(self, *args, **kwargs)
        finally:
            if "seconds" not in self.__dict__:
                self.seconds = {"fit": 0.0, "validation": 0.0, "test": 0.0}
            self.seconds[stage] += time.perf_counter() - started

    return wrapper


TIME_TO = (0.990, 0.992, 0.994, 0.995)  # validation accuracies whose first arrival results.json times (time_to)
ACCURACY = TASKS["classification"].monitor  # the validation accuracy the catalogue names (val/acc)


class Timing(L.Callback):
    def __init__(self):
        self.images = 0
        self.started = 0.0
        self.step_started = 0.0
        self.steps_seconds = 0.0   # inside training steps (forward, backward, update), all epochs
        self.train_seconds = 0.0   # training epochs, all: the run's images/s
        self.train_images = 0
        self.stage_started: Dict[str, float] = {}
        self.stage_seconds: Dict[str, float] = {"validation": 0.0, "test": 0.0}
        self.first_step_unix = None  # wall clock of the first training step: startup = this − launch
        self.last_step_unix = None   # … and the end of the last: training time = last − first
        self.time_to: Dict[str, float | None] = {f"{100 * t:.1f}": None for t in TIME_TO}

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.images, self.started = 0, time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.first_step_unix is None:
            self.first_step_unix = time.time()
        self.step_started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps_seconds += time.perf_counter() - self.step_started
        self.images += len(batch[1])
        self.last_step_unix = time.time()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        seconds = time.perf_counter() - self.started
        self.train_seconds += seconds
        self.train_images += self.images
        # this process's share; under DDP rank 0 speaks for itself (all ranks run in step)
        pl_module.log("time/epoch_s", seconds, on_epoch=True, rank_zero_only=True)
        pl_module.log("train/images_per_s", self.images / max(seconds, 1e-9), on_epoch=True, rank_zero_only=True)

    def _start(self, stage: str) -> None:
        self.stage_started[stage] = time.perf_counter()

    def _end(self, stage: str) -> None:
        self.stage_seconds[stage] += time.perf_counter() - self.stage_started.pop(stage, time.perf_counter())

    def on_validation_start(self, trainer, pl_module) -> None:
        self._start("validation")

    def on_validation_end(self, trainer, pl_module) -> None:
        self._end("validation")
        acc = trainer.callback_metrics.get(ACCURACY)
        if acc is None or trainer.sanity_checking or self.train_s is None:
            return
        for threshold in TIME_TO:  # training seconds up to the last step this validation saw
            key = f"{100 * threshold:.1f}"
            if self.time_to[key] is None and float(acc) >= threshold:
                self.time_to[key] = round(self.train_s, 3)

    def on_test_start(self, trainer, pl_module) -> None:
        self._start("test")

    def on_test_end(self, trainer, pl_module) -> None:
        self._end("test")

    @property
    def train_s(self) -> float | None:
        """First training step to last, wall clock (validation between epochs included)."""
        return None if self.first_step_unix is None else self.last_step_unix - self.first_step_unix

    @property
    def images_per_s(self) -> float:
        return self.train_images / self.train_seconds if self.train_seconds else 0.0

    def split(self, trainer, datamodule) -> Dict[str, float]:
        """Seconds per part of the job; views (which run inside validation, test and epoch ends)
        are counted apart from the stage they ran in."""
        views = {"fit": 0.0, "validation": 0.0, "test": 0.0}
        for callback in trainer.callbacks:
            for stage, seconds in (callback.__dict__.get("seconds") or {}).items() if getattr(callback, "is_view", False) else ():
                views[stage] += seconds
        checkpoints = getattr(trainer.strategy.checkpoint_io, "seconds", 0.0)
        return {k: round(v, 3) for k, v in {
            "data_s": getattr(datamodule, "setup_seconds", 0.0),
            "train_steps_s": self.steps_seconds,
            "validation_s": self.stage_seconds["validation"] - views["validation"],
            "test_s": self.stage_seconds["test"] - views["test"],
            "views_s": sum(views.values()),
            "checkpoints_s": checkpoints,
        }.items()}
