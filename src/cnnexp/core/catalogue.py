"""The task catalogue: per task its LightningModule, the metrics it logs, what "best" means, the
views it draws and whether it names classes. A model config's `task` key picks one. This is the
one place that says how tasks differ — nothing else switches on a task's name — and importing it
loads no torch (the settings check and the search read it before torch is imported)."""

from dataclasses import dataclass
from importlib import import_module
from typing import Optional, Tuple


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


def metric_mode(metric: str) -> str:
    """A loss or error is minimised, anything else (an accuracy) maximised."""
    name = metric.rsplit("/", 1)[-1]
    return "min" if "loss" in name or "err" in name else "max"


def monitor_and_mode(task: str, monitor: str = "auto", mode: str = "auto") -> Tuple[str, str]:
    """What "best" means for a run, decided once (the settings check records it in config.yaml;
    the checkpoint, the search's direction, the summary's ranking and HParams read that record):
    `auto` is the task's own metric, and its mode follows the metric; an explicit mode wins."""
    metric = TASKS[task].monitor if monitor == "auto" else monitor
    return metric, metric_mode(metric) if mode == "auto" else mode


def task_class(name: str):
    module, cls = TASKS[name].path.split(":")
    return getattr(import_module(module), cls)


# Each task's reference network, conf/model/<name>.yaml: what a costly setting is measured against.
REFERENCE_MODELS = {"classification": "cnn3", "reconstruction": "convae"}


# ------------------------------------------------------------------ what a run's record holds of them
@dataclass(frozen=True)
class Recorded:
    """A number results.json holds, as the tables, figures and HParams show it."""
    key: str                       # results.json's key
    title: str                     # the tables' column
    low: Optional[float] = None    # what it can be: an interval reaching past it is clipped to it
    high: Optional[float] = None
    curve: str = ""                # the epoch metric (metrics.csv) whose best it is
    label: str = ""                # an axis's words for it
    decimals: Optional[int] = None  # printed with thousands separators and this many decimals
    hparams: bool = True           # logged in HParams (seconds: only known once the run has ended)


# In the tables' order. An accuracy's interval (mean ± t·sd/√n) may reach past 1 with few seeds and
# a spread near the ceiling, a loss's below 0: the tables, figures and compare clip it to its range.
RECORDED = (
    Recorded("best_val_acc", "val acc", 0.0, 1.0, curve="val/acc", label="validation accuracy"),
    Recorded("test_acc", "test acc", 0.0, 1.0),
    Recorded("best_val_loss", "val loss", 0.0, None, curve="val/loss", label="validation loss"),
    Recorded("test_loss", "test loss", 0.0, None),
    Recorded("params", "params"),
    Recorded("macs", "MACs"),
    Recorded("images_per_s", "images/s", decimals=1),
    Recorded("seconds", "time s", decimals=1, hparams=False),
)
QUALITY = tuple(m for m in RECORDED if m.low is not None)  # what replicates are averaged over: how well it learned
CURVES = tuple(m for m in RECORDED if m.curve)             # the epoch curves compare.png overlays
# HParams lists the validation metrics first, then the test's and the run's size and speed
HPARAM_METRICS = tuple(m.key for m in sorted(RECORDED, key=lambda m: not m.key.startswith("best_")) if m.hparams)


def recorded(key: str) -> Optional[Recorded]:
    """The entry for a results.json key or an epoch metric (val/acc); None for any other."""
    return next((m for m in RECORDED if key in (m.key, m.curve)), None)


def title_of(key: str) -> str:
    found = recorded(key)
    return found.title if found else key


def label_of(key: str) -> str:
    """An axis's words: validation accuracy; a metric not listed as it reads (best_train_acc → train/acc)."""
    found = recorded(key)
    return found.label if found and found.label else key.replace("best_", "").replace("_", "/")


def range_of(key: str) -> Tuple[Optional[float], Optional[float]]:
    """(floor, ceiling) of what the metric can be; None where it has none."""
    found = recorded(key)
    return (found.low, found.high) if found else (None, None)
