"""The task catalogue: per task its LightningModule, the metrics it logs, what "best" means, the
views it draws and whether it names classes. A model config's `task` key picks one. This is the
one place that says how tasks differ — nothing else switches on a task's name — and importing it
loads no torch (the settings check and the search read it before torch is imported)."""

from dataclasses import dataclass
from importlib import import_module
from typing import Tuple


@dataclass(frozen=True)
class TaskInfo:
    path: str                  # module:Class of the LightningModule
    monitor: str               # what "best checkpoint" means unless callbacks.checkpoint.monitor says otherwise
    metrics: Tuple[str, ...]   # the epoch metrics it logs, which callbacks.checkpoint.monitor may name
    classifies: bool           # outputs class scores: num_classes must match the data; predict ranks classes
    views: Tuple[str, ...]     # the task's own TensorBoard views (callbacks.views keys), beyond the shared ones
    decoder: bool = False      # the plan mirrors the encoder with transposed convolutions (models/geometry.py)


TASKS = {
    "classification": TaskInfo("cnnexp.tasks.classification:ClassificationTask", "val/acc",
                               ("val/acc", "val/loss", "train/acc", "train/loss"),
                               classifies=True, views=("mistakes", "confusion_matrix")),
    "reconstruction": TaskInfo("cnnexp.tasks.reconstruction:ReconstructionTask", "val/loss",
                               ("val/loss", "train/loss"),
                               classifies=False, views=("reconstructions",), decoder=True),
}


def mode_of(metric: str) -> str:
    """A loss or error is minimised, anything else (an accuracy) maximised."""
    name = metric.rsplit("/", 1)[-1]
    return "min" if "loss" in name or "err" in name else "max"


def monitor_and_mode(task: str, monitor: str = "auto", mode: str = "auto") -> Tuple[str, str]:
    """What "best" means for a run, decided once (the settings check records it in config.yaml;
    the checkpoint, the search's direction, the summary's ranking and HParams read that record):
    `auto` is the task's own metric, and its mode follows the metric; an explicit mode wins."""
    metric = TASKS[task].monitor if monitor == "auto" else monitor
    return metric, mode_of(metric) if mode == "auto" else mode


def task_class(name: str):
    module, cls = TASKS[name].path.split(":")
    return getattr(import_module(module), cls)


# Each task's reference network, conf/model/<name>.yaml: what a costly setting is measured against.
REFERENCE_MODELS = {"classification": "cnn3", "reconstruction": "convae"}
