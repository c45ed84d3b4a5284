"""LightningModules, one per task; a model config's `task` key picks one, and each task names
its network. This is the one list of task names; importing it loads no torch."""

from dataclasses import dataclass
from importlib import import_module
from typing import Tuple


@dataclass(frozen=True)
class TaskInfo:
    path: str                  # module:Class of the LightningModule
    monitor: Tuple[str, str]   # (metric, "max" | "min"): what "best checkpoint" means
    metrics: Tuple[str, ...]   # the epoch metrics it logs, which callbacks.checkpoint.monitor may name


TASKS = {
    "classification": TaskInfo("cnnexp.tasks.classification:ClassificationTask", ("val/acc", "max"),
                               ("val/acc", "val/loss", "train/acc", "train/loss")),
    "reconstruction": TaskInfo("cnnexp.tasks.reconstruction:ReconstructionTask", ("val/loss", "min"),
                               ("val/loss", "train/loss")),
}


def task_class(name: str):
    module, cls = TASKS[name].path.split(":")
    return getattr(import_module(module), cls)
