"""Autoencoding: mean squared error between the (normalised) input and its reconstruction."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnexp.models.convae import ConvAutoencoder
from cnnexp.tasks.base import Task


class ReconstructionTask(Task):
    network = ConvAutoencoder

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, _ = batch                 # labels are not used
        x_hat = self.net(x)          # (B, C, H, W) → (B, C, H, W)
        loss = F.mse_loss(x_hat, x)
        if stage == "train":
            self.stop_if_diverged(loss)
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True, batch_size=len(x))
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")
