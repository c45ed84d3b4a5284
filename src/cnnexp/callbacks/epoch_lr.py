"""The learning rate as an epoch scalar: the rate each epoch began with, logged with the epoch's
loss and accuracy — the same step in TensorBoard (`epoch/lr`), the same row of metrics.csv.

Lightning's LearningRateMonitor logs it when the epoch starts, at the step before the epoch's
first — 0 for epoch 0 — one epoch to the left of the loss and accuracy it produced. Under
scheduler=one_cycle the rate moves every step; the epoch's first is the one charted.
"""

from __future__ import annotations

from typing import Dict

import lightning as L


class EpochLR(L.Callback):
    def __init__(self):
        self.began: Dict[str, float] = {}

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # `lr-Adam`, as LearningRateMonitor names it (cnnexp.tracking.board charts it as epoch/lr)
        self.began = {f"lr-{type(o).__name__}": float(o.param_groups[0]["lr"]) for o in trainer.optimizers}

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        for name, lr in self.began.items():
            pl_module.log(name, lr, on_epoch=True, rank_zero_only=True)
