"""Quieter consoles: drop Lightning's advertising tips and warnings that do not apply here."""

from __future__ import annotations

import logging
import warnings


class _DropTips(logging.Filter):
    """Lightning's advertising, and its echo of limit_* settings the user typed themselves."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return "Tip:" not in message and "was configured so" not in message


def quiet_lightning() -> None:
    """Call after Hydra has set up logging: Lightning's own console handler would print twice."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning_utilities.core.rank_zero"):
        logging.getLogger(name).addFilter(_DropTips())
    # in-memory loaders need no worker processes; Lightning suggests them for DataLoaders
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*Your `IterableDataset` has `__len__` defined.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")  # resume
    warnings.filterwarnings("ignore", message=".*torch.jit.trace.* is deprecated.*")  # logger.log_graph
    warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*The number of training batches.*is smaller than the logging interval.*")
    # a machine with SLURM installed but a run started outside it: cnnexp's SLURM path is hydra/launcher=slurm
    warnings.filterwarnings("ignore", message=".*The `srun` command is available on your system but is not used.*")
