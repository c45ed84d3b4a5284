"""Digit classification: cross-entropy, with loss and accuracy for train, validation and test."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from cnnexp.tasks.base import Task


class ClassificationTask(Task):
    monitor = ("val/acc", "max")  # what "best checkpoint" means for this task

    def __init__(self, run_config: dict):
        super().__init__(run_config)
        classes = self.settings.model.num_classes
        # one metric object per stage: their running states must not mix
        self.train_acc = MulticlassAccuracy(num_classes=classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=classes, average="micro")

    def _step(self, batch, stage: str) -> dict:
        x, y = batch                 # (B, 1, 28, 28), (B,)
        logits = self.net(x)         # (B, 10)
        loss = F.cross_entropy(logits, y)
        accuracy = getattr(self, f"{stage}_acc")
        accuracy(logits, y)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log(f"{stage}/acc", accuracy, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=len(y))
        return {"loss": loss, "logits": logits.detach()}

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        logits = self._step(batch, "test")["logits"]
        return {"probs": torch.softmax(logits.float(), dim=1)}  # for the mistakes and confusion views

    def predict_step(self, batch, batch_idx):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return torch.softmax(self.net(x), dim=1)
