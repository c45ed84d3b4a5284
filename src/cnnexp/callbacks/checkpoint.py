"""Checkpoints that belong to their run folder: written inside it, and found in it after a move."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from cnnexp.core.files import write_atomic


class InFolderCheckpointIO(TorchCheckpointIO):
    """Lightning's atomic save stages the file in $TMPDIR (fsspec), which a kill leaves behind;
    this one stages it beside the checkpoint, so nothing is ever left outside the run folder."""

    seconds = 0.0  # time spent writing checkpoints (results.json's checkpoints_s)

    def save_checkpoint(self, checkpoint: dict, path, storage_options: Optional[Any] = None) -> None:
        started = time.perf_counter()
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_atomic(Path(path), buffer.getbuffer())
        self.seconds += time.perf_counter() - started


class RunCheckpoint(ModelCheckpoint):
    """Lightning restores the best/last paths a checkpoint recorded, absolute, so a moved run
    looks for files that are gone and a copied one tests the original's; here they are re-rooted
    in this run's checkpoints/ folder."""

    def load_state_dict(self, state_dict: dict) -> None:
        saved = state_dict.get("dirpath")
        if saved and self.dirpath and Path(saved) != Path(self.dirpath):
            here = lambda p: str(Path(self.dirpath) / Path(p).name) if p else p  # noqa: E731
            state_dict = {**state_dict, "dirpath": self.dirpath,
                          "best_model_path": here(state_dict.get("best_model_path")),
                          "kth_best_model_path": here(state_dict.get("kth_best_model_path")),
                          "last_model_path": here(state_dict.get("last_model_path")),
                          "best_k_models": {here(k): v for k, v in state_dict.get("best_k_models", {}).items()}}
        super().load_state_dict(state_dict)
        self.best_epoch = state_dict.get("best_epoch")

    best_epoch: Optional[int] = None  # the epoch best.ckpt holds (results.json's best_epoch)

    def check_monitor_top_k(self, trainer, current=None) -> bool:
        # A tie on the monitor goes to the later epoch: as good by the run's own measure, and trained
        # longer (with a one-cycle schedule, two epochs tied on 5,000 validation images and Lightning
        # kept the earlier, half-trained one: 99.37 % tested instead of 99.5).
        if current is not None and self.save_top_k == 1 and self.best_model_score is not None \
                and bool(current == self.best_model_score):
            return trainer.strategy.reduce_boolean_decision(True)  # DDP: every rank decides alike, as below
        return super().check_monitor_top_k(trainer, current)

    def _update_best_and_save(self, current, trainer, monitor_candidates) -> None:
        # Called only for a new best or a tie (save_top_k=1); set before the save so best.ckpt carries it too.
        self.best_epoch = trainer.current_epoch
        super()._update_best_and_save(current, trainer, monitor_candidates)

    # Lightning 2.6 writes last.ckpt only in an epoch that also wrote a new best: a run resumed after
    # epochs without improvement would train those epochs again. Here last.ckpt is every epoch's.
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._keep_last(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._keep_last(trainer)

    def _keep_last(self, trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def state_dict(self) -> dict:
        return {**super().state_dict(), "best_epoch": self.best_epoch}
