"""Autoencoding: mean squared error between the (normalised) input and its reconstruction."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnexp.models.convae import ConvAutoencoder
from cnnexp.tasks.base import Task


class ReconstructionTask(Task):
    network = ConvAutoencoder

    def _evaluate(self, batch, stage: str) -> torch.Tensor:
        x, _ = batch                 # labels are not used
        x_hat = self.net(x)          # (B, C, H, W) → (B, C, H, W)
        loss = F.mse_loss(x_hat, x)
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=True, batch_size=len(x))
        return loss

    def training_step(self, batch, batch_idx):
        x, _ = batch
        loss = F.mse_loss(self.net(x), x)
        self.stop_if_diverged(loss)
        self.log_train(batch_idx, len(x), loss=loss.detach() * len(x))
        return loss

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test")
