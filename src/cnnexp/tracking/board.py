"""What TensorBoard shows first: tag names, and HParams that a plain `tensorboard --logdir` reads.

TensorBoard orders charts by tag and groups them by the tag's first part, so the curves a person
looks at share the group that sorts first — `epoch/`: lr, train_loss, val_acc, val_loss — then
the images, `run/` (the run's results, one point each: what HParams compares), `test/` and
`train/` (per step, and the epoch's training accuracy). Lightning's metric names (val/acc, the
checkpoint's monitor) are unchanged everywhere else; its `epoch` counter is not charted.

A run writes its HParams session (its values and status), never an experiment: with fast
loading TensorBoard takes the first experiment it finds as the whole sweep's, so only the sweep's
`_sweep` folder declares one (cnnexp.sweeps.hparams_experiment, written by cnnexp.tracking.events), with the swept keys first.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Mapping, Optional

from lightning.pytorch.loggers import TensorBoardLogger


def tag(name: str) -> Optional[str]:
    """A Lightning metric name → its TensorBoard tag; None: not charted."""
    if name == "epoch":
        return None
    if re.fullmatch(r"lr-[A-Za-z]+", name):  # LearningRateMonitor: lr-Adam
        return "epoch/lr"
    if name == "train/loss_epoch":
        return "epoch/train_loss"
    if name.startswith("val/"):
        return "epoch/val_" + name[4:]
    return name


class Board(TensorBoardLogger):
    """Lightning's TensorBoardLogger, with the tags above and HParams as sessions only."""

    def log_metrics(self, metrics: Mapping[str, float], step: Optional[int] = None) -> None:
        named = {tag(k): v for k, v in metrics.items()}
        named.pop(None, None)
        super().log_metrics(named, step)

    def log_hyperparams(self, params: Dict[str, Any], metrics: Optional[Dict[str, Any]] = None,
                        step: Optional[int] = None) -> None:
        from lightning.fabric.utilities.rank_zero import rank_zero_only
        from torch.utils.tensorboard.summary import hparams

        if not metrics or rank_zero_only.rank != 0:  # Lightning's own call at fit start: no values yet
            return
        self.log_metrics(metrics, step)
        _, start, end = hparams({k: v for k, v in params.items() if v is not None}, metrics)
        writer = self.experiment._get_file_writer()
        writer.add_summary(start, step)
        writer.add_summary(end, step)


def show_provenance(board: Board, run_dir) -> None:
    """TensorBoard's text tab: what produced the run (provenance.json) and its uncommitted change."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from cnnexp.core.errors import UserError
    from cnnexp.records.provenance import flat_section, read_provenance

    try:
        found = read_provenance(run_dir) if rank_zero_only.rank == 0 else None
    except UserError:
        found = None
    if not found:
        return
    rows = [("command", f"`{found.get('command', '')}`")]
    for section in ("code", "machine", "data"):
        rows += [(f"{section}.{k}", str(v)) for k, v in flat_section(found, section).items()]
    packages = found.get("packages") or {}
    rows += [(f"packages.{k}", packages[k]) for k in ("python", "torch", "lightning", "hydra-core", "numpy") if k in packages]
    text = "| fact | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    if found.get("patch"):
        text += "\n\nuncommitted change (code.patch):\n\n" + "\n".join("    " + line for line in found["patch"][:20000].splitlines())
    board.experiment.add_text("run/provenance", text, 0)
