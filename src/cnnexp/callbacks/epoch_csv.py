"""metrics.csv in the run folder: one row per epoch, every epoch-level metric as a column."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import lightning as L
from lightning.fabric.utilities.rank_zero import rank_zero_only

from cnnexp.core.files import write_atomic


class EpochCSV(L.Callback):
    def __init__(self, path: Path):
        self.path = Path(path)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # validation has run inside the epoch by now, and the train metrics are reduced
        if rank_zero_only.rank != 0:
            return
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for key, value in sorted(trainer.callback_metrics.items()):
            if key.endswith("_step"):
                continue
            row[key.removesuffix("_epoch")] = round(float(value), 6)
        rows = []
        if self.path.exists():
            with self.path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < row["epoch"]]  # a resume rewrites its epoch
        rows.append(row)
        columns = list(dict.fromkeys(k for r in rows for k in r))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(self.path, text.getvalue())
