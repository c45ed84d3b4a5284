"""Digit classification: cross-entropy, with loss and accuracy for train, validation and test."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.functional.classification import multiclass_accuracy

from cnnexp.models.convnet import ConvClassifier
from cnnexp.tasks.base import Task
from cnnexp.tasks.tta import tta_logits


class ClassificationTask(Task):
    network = ConvClassifier

    def __init__(self, settings):
        super().__init__(settings)
        classes = self.settings.model.num_classes
        # Validation and test accumulate exact counts in metric objects. Training logs each batch's
        # accuracy (functional: no metric state to copy every step) and Lightning averages them,
        # weighted by batch size, for the epoch value.
        self.val_acc = MulticlassAccuracy(num_classes=classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=classes, average="micro")

    def _step(self, batch, stage: str) -> dict:
        x, y = batch                 # (B, C, H, W), (B,)
        shift = self.settings.tta.shift if stage == "test" else 0
        logits = tta_logits(self.net, x, shift, self.settings.tta.margin) if shift else self.net(x)  # (B, num_classes)
        on_step = stage == "train"
        smoothing = self.settings.loss.label_smoothing if on_step else 0.0  # evaluation: the plain loss
        loss = F.cross_entropy(logits, y, label_smoothing=smoothing)
        if on_step:
            self.stop_if_diverged(loss)
            accuracy = multiclass_accuracy(logits.detach(), y, self.settings.model.num_classes,
                                           average="micro", validate_args=False)
        else:
            accuracy = getattr(self, f"{stage}_acc")
            accuracy(logits, y)
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=len(y),
                 sync_dist=not on_step)  # evaluation loss averaged over DDP ranks
        self.log(f"{stage}/acc", accuracy, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=len(y))
        return {"loss": loss, "logits": logits.detach()}

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        logits = self._step(batch, "test")["logits"]
        return {"probs": torch.softmax(logits.float(), dim=1)}  # for the mistakes and confusion views
