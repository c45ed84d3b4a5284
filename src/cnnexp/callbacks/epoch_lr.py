"""The learning rate as an epoch scalar: the rate each epoch began with, logged with the epoch's
loss and accuracy — the same step in TensorBoard (`epoch/lr`), the same row of metrics.csv.

Lightning's LearningRateMonitor logs at the step before the epoch's first (0 for epoch 0, where
no other epoch scalar is) and, logging per epoch, leaves out a scheduler that steps per batch
(scheduler=one_cycle).
"""

from __future__ import annotations

from typing import Dict

import lightning as L


class EpochLR(L.Callback):
    def __init__(self):
        self.began: Dict[str, float] = {}

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # `lr-Adam`, as LearningRateMonitor names it (cnnexp.board charts it as epoch/lr)
        self.began = {f"lr-{type(o).__name__}": float(o.param_groups[0]["lr"]) for o in trainer.optimizers}

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        for name, lr in self.began.items():
            pl_module.log(name, lr, on_epoch=True, rank_zero_only=True)
