"""Digit classification: cross-entropy, with loss and accuracy for train, validation and test."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from cnnexp.models.convnet import ConvClassifier
from cnnexp.tasks.augment import random_shift
from cnnexp.tasks.base import Task
from cnnexp.tasks.tta import tta_logits


class ClassificationTask(Task):
    network = ConvClassifier

    def __init__(self, settings):
        super().__init__(settings)
        classes = self.settings.model.num_classes
        # Validation and test accumulate exact counts in metric objects; training counts its correct
        # answers itself (Task.log_train: no metric state, no log call on most steps).
        self.val_acc = MulticlassAccuracy(num_classes=classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=classes, average="micro")

    def _evaluate(self, batch, stage: str) -> dict:
        x, y = batch                 # (B, C, H, W), (B,)
        shift = self.settings.tta.shift if stage == "test" else 0
        logits = tta_logits(self.net, x, shift, self.settings.tta.margin) if shift else self.net(x)  # (B, num_classes)
        accuracy = getattr(self, f"{stage}_acc")
        accuracy(logits, y)
        loss = F.cross_entropy(logits, y)
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=True, batch_size=len(y),
                 sync_dist=True)  # evaluation loss averaged over DDP ranks
        self.log(f"{stage}/acc", accuracy, on_epoch=True, prog_bar=True, batch_size=len(y))
        return {"loss": loss, "logits": logits.detach()}

    def training_step(self, batch, batch_idx):
        x, y = batch                 # (B, C, H, W), (B,)
        if self.settings.augment.shift:
            x = random_shift(x, self.settings.augment.shift)  # (B, C, H, W), each image moved
        logits = self.net(x)         # (B, num_classes)
        loss = F.cross_entropy(logits, y, label_smoothing=self.settings.loss.label_smoothing)
        self.stop_if_diverged(loss)
        self.log_train(batch_idx, len(y), loss=loss.detach() * len(y), acc=(logits.detach().argmax(1) == y).sum())
        return loss

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx):
        logits = self._evaluate(batch, "test")["logits"]
        return {"probs": torch.softmax(logits.float(), dim=1)}  # for the mistakes and confusion views
