"""Typed settings for a run: the schema, the ranges and choices, and the one check.

Defaults live in one place, the YAML files under conf/: they are what users read, copy and
override, and `--cfg job` prints them. The dataclasses here carry types only (no defaults), so
merging the composed config into them rejects unknown keys, values of the wrong type and keys
the YAML forgot; `check` then applies ranges and choices, and plans the network's shapes. Every
error names the key as the user types it on the command line. Pure Python: no torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass
from functools import cached_property
from typing import Any, List, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException

from cnnexp.data.idx import IMAGE_SHAPE, TRAIN_IMAGES
from cnnexp.core.errors import SettingsError, ShapeError
from cnnexp.arithmetic.geometry import ACTIVATIONS, NORMS, POOLS, SHORTCUTS, fixes, plan, resolve_blocks
from cnnexp.core.catalogue import TASKS, monitor_and_mode


# ---------------------------------------------------------------- the schema, group by group
@dataclass
class PathsSettings:
    project_dir: str
    data_dir: str
    output_dir: str


@dataclass
class WheelSettings:
    name: str
    version: str
    sha256: str


@dataclass
class DataSettings:
    """data=mnist (the default)."""
    name: str
    root: str
    val_size: int
    batch_size: int
    eval_batch_size: int
    normalize: bool
    sources: List[str]
    mirrors: List[str]
    download_timeout: float
    wheel: WheelSettings


@dataclass
class FolderSettings:
    """data=folder: your own images, one subfolder per class (see cnnexp.data.images)."""
    name: str
    root: str
    image_size: Any               # auto (the most common size), a side, or [height, width]
    channels: Any                 # auto (3 if any image has colour, else 1), 1 or 3
    classes: Optional[List[str]]  # filled in from the class folders; recorded with the run
    val_fraction: float
    test_fraction: float
    batch_size: int
    eval_batch_size: int
    normalize: bool
    mean: Optional[List[float]]   # per channel, of the training split: computed once, then recorded
    std: Optional[List[float]]
    memory_budget_mb: int
    num_workers: int
    strict: bool


DATASETS = {"mnist": DataSettings, "folder": FolderSettings}  # data.name → its schema


@dataclass
class BlockSettings:
    channels: int
    kernel_size: int
    stride: int
    padding: Any  # int, "same" or "valid"
    dilation: int
    groups: int
    bias: Any  # auto (off when a norm follows), true or false
    norm: str
    norm_groups: int
    activation: str
    pool: str
    pool_kernel: int
    pool_stride: int
    pool_padding: int


@dataclass
class HeadSettings:
    hidden: List[int]
    dropout: float
    init: str  # of the linears: xavier, pytorch, or zero (the class layer starts at 0)


@dataclass
class ModelSettings:
    name: str
    task: str
    input_shape: Any  # auto (from the data) or [channels, height, width]
    num_classes: Any  # auto (from the data) or an integer
    kernel_size: Optional[int]
    stride: Optional[int]
    padding: Any
    dilation: Optional[int]
    groups: Optional[int]
    bias: Any
    norm: Optional[str]
    norm_groups: Optional[int]
    activation: Optional[str]
    pool: Optional[str]
    pool_first: bool  # each block pools right after its conv, before its norm and activation
    blocks: List[BlockSettings]
    head: HeadSettings

    @cached_property
    def layers(self):
        """The shape plan (geometry.Layer rows), worked once: the check, the table and the
        network all read this one."""
        return plan(self)


@dataclass
class OptimizerSettings:
    name: str
    lr: float
    weight_decay: float
    momentum: float
    betas: List[float]  # adam, adamw
    nesterov: bool      # sgd


@dataclass
class SchedulerSettings:
    name: str
    max_lr: Optional[float]


@dataclass
class TrainerSettings:
    """The lightning.Trainer arguments cnnexp passes through (tests keep this list in step)."""

    accelerator: str
    devices: Any
    strategy: str
    num_nodes: int
    precision: str
    max_epochs: int
    max_steps: int
    limit_train_batches: Any
    limit_val_batches: Any
    limit_test_batches: Any
    val_check_interval: Any
    check_val_every_n_epoch: Optional[int]
    log_every_n_steps: int
    num_sanity_val_steps: int
    gradient_clip_val: Optional[float]
    accumulate_grad_batches: int
    deterministic: Any
    benchmark: Optional[bool]
    enable_progress_bar: bool
    enable_model_summary: bool


@dataclass
class MLflowSettings:
    experiment: str
    tracking_uri: str  # resolved when the run starts: MLFLOW_TRACKING_URI, else a SQLite store under outputs/


@dataclass
class LoggerSettings:
    tensorboard: bool
    log_graph: bool
    mlflow: Optional[MLflowSettings]  # null: off (logger=mlflow turns it on)


@dataclass
class CheckpointSettings:
    monitor: str
    mode: str
    save_last: bool


@dataclass
class ViewSettings:
    every_n_epochs: int
    text: bool
    filters: bool
    feature_maps: bool
    receptive_field: bool
    arithmetic: bool
    mistakes: bool
    confusion_matrix: bool
    reconstructions: bool


@dataclass
class CallbackSettings:
    checkpoint: CheckpointSettings
    views: ViewSettings
    progress_bar_refresh: Any  # auto (a bar on a terminal, a line per epoch elsewhere) or an integer


@dataclass
class SweepOptions:
    replicate_keys: List[str]
    fail_fast: bool
    retries: int


@dataclass
class LossSettings:
    label_smoothing: float


@dataclass
class LookaheadSettings:
    every: int    # steps between syncs; 0: off
    decay: float  # the slow weights keep this share at each sync (ramped up over training)


@dataclass
class TTASettings:
    shift: int     # pixels; 0: off
    margin: float  # shifted copies only where the plain view's top-two probability margin is below it; 1: all


@dataclass
class PerformanceSettings:
    channels_last: Any  # auto: on the CPU and with 16-bit precision; true / false
    compile: bool  # torch.compile the network


@dataclass
class Settings:
    seed: int
    test_after_fit: bool
    resume: Optional[str]
    sweep_options: SweepOptions
    paths: PathsSettings
    data: Any  # DataSettings or FolderSettings, by data.name
    model: ModelSettings
    optimizer: OptimizerSettings
    scheduler: SchedulerSettings
    loss: LossSettings
    lookahead: LookaheadSettings
    tta: TTASettings
    trainer: TrainerSettings
    logger: LoggerSettings
    callbacks: CallbackSettings
    performance: PerformanceSettings
    print_config: bool = False  # the resolved config on the console (config.yaml always has it)


# ---------------------------------------------------------------- choices and ranges
DATA_SOURCES = ("local", "mirrors", "wheel")
POOL_CHOICES = (*POOLS, "none")
OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}  # name → torch.optim class
SCHEDULERS = ("none", "one_cycle")
HEAD_INITS = ("xavier", "pytorch", "zero")
ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")
# What lightning.Trainer(precision=…) accepts (a test keeps this in step with Lightning).
PRECISIONS = ("32-true", "32", "bf16-mixed", "bf16", "16-mixed", "16", "16-true", "bf16-true", "64-true", "64",
              "transformer-engine", "transformer-engine-float16")


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise SettingsError(key, value, allowed)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite(v: Any) -> bool:
    """inf passes `> 0` and nan fails every comparison silently: a number must be one."""
    return isinstance(v, (int, float)) and math.isfinite(v)


def _check_limit(key: str, value: Any) -> None:
    ok = (_is_int(value) and value >= 0) or (isinstance(value, float) and 0.0 <= value <= 1.0)
    _require(ok, key, value, "a fraction in [0, 1] or a whole number of batches ≥ 0")


BLOCK_RULES = {  # block key → (test, what is allowed)
    "kernel_size": (lambda v: _is_int(v) and v >= 1, "an integer ≥ 1"),
    "stride": (lambda v: _is_int(v) and v >= 1, "an integer ≥ 1"),
    "dilation": (lambda v: _is_int(v) and v >= 1, "an integer ≥ 1 (1: no gaps)"),
    "groups": (lambda v: _is_int(v) and v >= 1, "an integer ≥ 1 dividing the channels (channels: depthwise)"),
    "norm_groups": (lambda v: _is_int(v) and v >= 1, "an integer ≥ 1 dividing the channels"),
    "padding": (lambda v: v in ("same", "valid") or (_is_int(v) and v >= 0), 'an integer ≥ 0, "same" or "valid"'),
    "bias": (lambda v: v in ("auto", True, False), "auto (off when a norm follows), true or false"),
    "norm": (lambda v: v in NORMS, f"one of {', '.join(NORMS)}"),
    "activation": (lambda v: v in ACTIVATIONS, f"one of {', '.join(ACTIVATIONS)}"),
    "pool": (lambda v: v in POOL_CHOICES, f"one of {', '.join(POOL_CHOICES)}"),
}


def _check_block_key(key: str, name: str, value: Any) -> None:
    test, allowed = BLOCK_RULES[name]
    _require(test(value), key, value, allowed)


def check(s: Settings) -> Settings:
    """Ranges and choices that types alone cannot express."""
    _require(_is_int(s.seed) and s.seed >= 0, "seed", s.seed, "an integer ≥ 0")

    d = s.data
    _require(d.batch_size >= 1, "data.batch_size", d.batch_size, "an integer ≥ 1")
    _require(d.eval_batch_size >= 1, "data.eval_batch_size", d.eval_batch_size, "an integer ≥ 1")
    shape, classes, train_split, source = _check_mnist(d) if d.name == "mnist" else _check_folder(d, s.seed, s.test_after_fit)
    _require(d.batch_size <= train_split, "data.batch_size", d.batch_size,
             f"at most {train_split}, the training split of {source}: a bigger batch "
             "would train no step at all (the last partial batch is dropped)")

    m = s.model
    _require(m.task in TASKS, "model.task", m.task, f"one of {', '.join(TASKS)}")
    if m.input_shape == "auto":  # the network follows the data
        m.input_shape = list(shape)
    _require(isinstance(m.input_shape, (list, tuple)) and len(m.input_shape) == 3
             and all(_is_int(v) and v >= 1 for v in m.input_shape),
             "model.input_shape", m.input_shape, "auto, or three integers ≥ 1: [channels, height, width]")
    _require(tuple(m.input_shape) == tuple(shape), "model.input_shape", list(m.input_shape),
             f"{source} holds {'×'.join(map(str, shape))} images (channels×height×width), so the network must "
             f"take {list(shape)}; use model.input_shape=auto")
    if m.num_classes == "auto":
        m.num_classes = len(classes)
    _require(_is_int(m.num_classes) and m.num_classes >= 2, "model.num_classes", m.num_classes, "auto, or an integer ≥ 2")
    _require(not TASKS[m.task].classifies or m.num_classes == len(classes), "model.num_classes", m.num_classes,
             f"{source} has {len(classes)} classes ({', '.join(classes[:6])}{' …' if len(classes) > 6 else ''}); "
             "use model.num_classes=auto")
    _require(len(m.blocks) >= 1, "model.blocks", [], "at least one conv block")
    for key in SHORTCUTS:  # each shortcut, when set, obeys its block key's rule
        if getattr(m, key) is not None:
            _check_block_key(f"model.{key}", key, getattr(m, key))
    for i, b in enumerate(m.blocks):
        key = f"model.blocks.{i}"
        _require(b.channels >= 1, f"{key}.channels", b.channels, "an integer ≥ 1")
        for name in SHORTCUTS:
            _check_block_key(f"{key}.{name}", name, getattr(b, name))
        _require(b.pool_kernel >= 1, f"{key}.pool_kernel", b.pool_kernel, "an integer ≥ 1")
        _require(b.pool_stride >= 1, f"{key}.pool_stride", b.pool_stride, "an integer ≥ 1")
        _require(b.pool_padding >= 0, f"{key}.pool_padding", b.pool_padding, "an integer ≥ 0")
    for i, h in enumerate(m.head.hidden):
        _require(h >= 1, f"model.head.hidden.{i}", h, "an integer ≥ 1")
    _require(0.0 <= m.head.dropout < 1.0, "model.head.dropout", m.head.dropout, "a probability in [0, 1)")
    _require(m.head.init in HEAD_INITS, "model.head.init", m.head.init, f"one of {', '.join(HEAD_INITS)}")

    o = s.optimizer
    _require(o.name in OPTIMIZERS, "optimizer.name", o.name, f"one of {', '.join(OPTIMIZERS)}")
    _require(_finite(o.lr) and o.lr > 0, "optimizer.lr", o.lr, "a finite learning rate > 0, e.g. 1e-3")
    _require(_finite(o.weight_decay) and o.weight_decay >= 0, "optimizer.weight_decay", o.weight_decay,
             "a finite number ≥ 0")
    _require(0 <= o.momentum < 1, "optimizer.momentum", o.momentum, "a number in [0, 1)")
    _require(len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas), "optimizer.betas", o.betas,
             "two numbers in [0, 1), e.g. [0.9,0.999]")
    _require(not o.nesterov or (o.name == "sgd" and o.momentum > 0), "optimizer.nesterov", o.nesterov,
             "false, or true with optimizer.name=sgd and optimizer.momentum > 0")
    la = s.lookahead
    _require(_is_int(la.every) and la.every >= 0, "lookahead.every", la.every, "an integer ≥ 0 (0: off)")
    _require(0.0 <= la.decay < 1.0, "lookahead.decay", la.decay, "a number in [0, 1), e.g. 0.8")
    _require(_is_int(s.tta.shift) and 0 <= s.tta.shift < min(shape[1:]) // 2, "tta.shift", s.tta.shift,
             f"an integer in [0, {min(shape[1:]) // 2}) pixels (0: off)")
    _require(_finite(s.tta.margin) and 0.0 < s.tta.margin <= 1.0, "tta.margin", s.tta.margin,
             "a number in (0, 1]: 1 shifts every image, 0.5 those whose answer is that close")

    _require(_is_int(s.sweep_options.retries) and s.sweep_options.retries >= 0, "sweep_options.retries",
             s.sweep_options.retries, "an integer ≥ 0")
    _require(0.0 <= s.loss.label_smoothing < 1.0, "loss.label_smoothing", s.loss.label_smoothing,
             "a number in [0, 1), e.g. 0.1")

    sc = s.scheduler
    _require(sc.name in SCHEDULERS, "scheduler.name", sc.name, f"one of {', '.join(SCHEDULERS)}")
    if sc.name == "one_cycle":
        _require(_finite(sc.max_lr) and sc.max_lr > 0, "scheduler.max_lr", sc.max_lr, "a finite learning rate > 0")

    t = s.trainer
    _require(t.accelerator in ACCELERATORS, "trainer.accelerator", t.accelerator, f"one of {', '.join(ACCELERATORS)}")
    _require(t.devices == "auto" or (_is_int(t.devices) and (t.devices >= 1 or t.devices == -1)),
             "trainer.devices", t.devices, '"auto", -1 (all) or an integer ≥ 1')
    _require(t.precision in PRECISIONS, "trainer.precision", t.precision, f"one of {', '.join(PRECISIONS)}")
    _require(t.max_epochs >= 1 or t.max_epochs == -1, "trainer.max_epochs", t.max_epochs, "an integer ≥ 1 (or -1 with max_steps)")
    _require(t.max_steps >= 1 or t.max_steps == -1, "trainer.max_steps", t.max_steps, "an integer ≥ 1, or -1 for no limit")
    _require(not (t.max_epochs == -1 and t.max_steps == -1), "trainer.max_epochs", t.max_epochs,
             "-1 trains forever unless trainer.max_steps is set; give a number of epochs or steps")
    _require(t.num_nodes >= 1, "trainer.num_nodes", t.num_nodes, "an integer ≥ 1")
    _require(t.check_val_every_n_epoch is None or t.check_val_every_n_epoch >= 1, "trainer.check_val_every_n_epoch",
             t.check_val_every_n_epoch, "an integer ≥ 1, or null to validate by val_check_interval alone")
    _require(t.gradient_clip_val is None or t.gradient_clip_val >= 0, "trainer.gradient_clip_val",
             t.gradient_clip_val, "a number ≥ 0 (0 or null: no clipping)")
    _require(t.num_sanity_val_steps >= -1, "trainer.num_sanity_val_steps", t.num_sanity_val_steps, "an integer ≥ -1")
    for name in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        _check_limit(f"trainer.{name}", getattr(t, name))
    batches = train_split // d.batch_size
    if _is_int(t.limit_train_batches):
        batches = min(batches, t.limit_train_batches)
    elif isinstance(t.limit_train_batches, float):
        batches = int(batches * t.limit_train_batches)
    _require(batches >= 1, "trainer.limit_train_batches", t.limit_train_batches,
             f"at least one batch an epoch (an epoch holds {train_split // d.batch_size}); 0 trains nothing")
    v = t.val_check_interval
    _require((_is_int(v) and 1 <= v <= max(batches, 1)) or (isinstance(v, float) and 0.0 < v <= 1.0),
             "trainer.val_check_interval", v,
             f"a fraction of an epoch in (0, 1], or a number of batches ≤ {batches} (the batches in an epoch)")
    _require(t.log_every_n_steps >= 1, "trainer.log_every_n_steps", t.log_every_n_steps, "an integer ≥ 1")
    _require(t.accumulate_grad_batches >= 1, "trainer.accumulate_grad_batches", t.accumulate_grad_batches, "an integer ≥ 1")
    _require(t.deterministic in (True, False, "warn"), "trainer.deterministic", t.deterministic, 'true, false or "warn"')

    _require(s.performance.channels_last in ("auto", True, False), "performance.channels_last",
             s.performance.channels_last, "auto, true or false")

    c = s.callbacks
    _require(c.checkpoint.mode in ("auto", "min", "max"), "callbacks.checkpoint.mode", c.checkpoint.mode, "auto, min or max")
    logged = TASKS[m.task].metrics
    _require(c.checkpoint.monitor == "auto" or c.checkpoint.monitor in logged, "callbacks.checkpoint.monitor",
             c.checkpoint.monitor, f"auto, or a metric the {m.task} task logs: {', '.join(logged)}")
    c.checkpoint.monitor, c.checkpoint.mode = monitor_and_mode(m.task, c.checkpoint.monitor, c.checkpoint.mode)
    _require(not (c.checkpoint.monitor.startswith("val/") and t.limit_val_batches == 0), "trainer.limit_val_batches",
             t.limit_val_batches, f"at least one batch: the best checkpoint is chosen by {c.checkpoint.monitor}, "
             "which no validation would log (or callbacks.checkpoint.monitor=train/loss)")
    _require(c.views.every_n_epochs >= 1, "callbacks.views.every_n_epochs", c.views.every_n_epochs, "an integer ≥ 1")
    _require(c.progress_bar_refresh == "auto" or (_is_int(c.progress_bar_refresh) and c.progress_bar_refresh >= 0),
             "callbacks.progress_bar_refresh", c.progress_bar_refresh, "auto, or an integer ≥ 0 (0 hides the bar)")
    m.blocks = resolve_blocks(m)  # what the network is built with: the shortcuts (still set) applied
    try:
        m.layers  # the whole shape chain: ShapeError names the layer that cannot exist
    except ShapeError as e:
        tries = fixes(m, e.block) if getattr(e, "block", None) else []
        raise ShapeError("\n".join([str(e), *(f"  try: {' '.join(t)}" for t in tries)])) from None
    return s


def _check_mnist(d: DataSettings):
    """(image shape, class names, training images, what to call the data) of data=mnist."""
    _require(1 <= d.val_size < TRAIN_IMAGES, "data.val_size", d.val_size, f"an integer in [1, {TRAIN_IMAGES})")
    _require(d.download_timeout > 0, "data.download_timeout", d.download_timeout, "a number of seconds > 0")
    for i, src in enumerate(d.sources):
        _require(src in DATA_SOURCES, f"data.sources.{i}", src, f"one of {', '.join(DATA_SOURCES)}")
    return IMAGE_SHAPE, MNIST_CLASSES, TRAIN_IMAGES - d.val_size, "MNIST"


def _check_folder(d: FolderSettings, seed: int, test_after_fit: bool = False):
    """The same for data=folder: the folder is scanned (headers only), and what it holds is
    recorded as effective values — image size, channels, classes."""
    from cnnexp.data import images

    images.check_image_size(d.image_size)
    _require(d.channels in ("auto", 1, 3), "data.channels", d.channels, "auto, 1 (greyscale) or 3 (colour)")
    _require(0.0 < d.val_fraction < 1.0, "data.val_fraction", d.val_fraction, "a fraction in (0, 1), e.g. 0.1")
    _require(0.0 <= d.test_fraction < 1.0 and d.val_fraction + d.test_fraction < 1.0, "data.test_fraction",
             d.test_fraction, "a fraction in [0, 1) that leaves images to train on with data.val_fraction")
    _require(d.memory_budget_mb >= 0, "data.memory_budget_mb", d.memory_budget_mb, "megabytes ≥ 0 (0: always stream)")
    _require(d.num_workers >= 0, "data.num_workers", d.num_workers, "an integer ≥ 0")
    _require(d.root not in (None, "", "???"), "data.root", d.root, "the folder of your images, e.g. data.root=~/datasets/leaves")
    for key in ("mean", "std"):
        value = getattr(d, key)
        _require(value is None or (len(value) in (1, 3) and all(v > 0 or key == "mean" for v in value)),
                 f"data.{key}", value, "null (computed from the training images) or one number per channel")
    if d.classes and d.channels != "auto" and isinstance(d.image_size, list):
        # a recorded run (resume, eval, predict): its own record; the data module checks the folder when it reads it
        return (d.channels, *d.image_size), list(d.classes), d.batch_size, f"data.root={d.root}"
    folder = images.scan(d.root, d.strict, d.val_fraction, d.test_fraction, seed)
    _require(d.classes is None or list(d.classes) == folder.classes, "data.classes", d.classes,
             f"the class folders are {folder.classes}; leave data.classes=null")
    _require(folder.files["test"] or not test_after_fit, "data.test_fraction", d.test_fraction,
             "leaves no test image, and the run tests its best checkpoint when it ends; give a fraction > 0 "
             "(e.g. 0.1), add a test/ folder, or test_after_fit=false")
    shape = images.shape_of(folder, d.image_size, d.channels)
    d.channels, d.image_size, d.classes = shape[0], [shape[1], shape[2]], list(folder.classes)
    return shape, folder.classes, len(folder.files["train"]), f"data.root={d.root}"


MNIST_CLASSES = [str(digit) for digit in range(10)]
# What a run recorded before issue #29's keys existed did: its config.yaml lacks them (resume, eval).
RECORDED_BEFORE = {"optimizer": {"betas": [0.9, 0.999], "nesterov": False},
                   "model": {"pool_first": False, "head": {"init": "xavier"}},
                   "lookahead": {"every": 0, "decay": 0.0}, "tta": {"shift": 0, "margin": 1.0}}


def _with_defaults(given: dict, before: dict) -> dict:
    """`given` with the keys of `before` it lacks, at any depth."""
    merged = dict(given)
    for key, value in before.items():
        merged[key] = _with_defaults(given.get(key) or {}, value) if isinstance(value, dict) else given.get(key, value)
    return merged
_TYPE_WORDS = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false", "String": "a string"}


def _locate(tree: Any, key: str, prefix: str = "", in_list: bool = False) -> str | None:
    """OmegaConf names a bad list item's key without its path (`channels`): find the full one,
    inside a list (`model.kernel_size`, a shortcut that may be null, is not the key it means)."""
    if not key or "." in key:
        return None
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for k, v in items:
        path = f"{prefix}.{k}" if prefix else str(k)
        if str(k) == key and in_list and isinstance(tree, dict) and v is None:
            return path
        found = _locate(v, key, path, in_list or isinstance(tree, list))
        if found:
            return found
    return None


def _user_key(key: str) -> str:
    """OmegaConf's `model.blocks[0].channels` → `model.blocks.0.channels`, as typed on the command line."""
    return re.sub(r"\[(\d+)\]", r".\1", key)


def _keys_at(schema: type, path: str, data: str | None = None) -> List[str]:
    """The field names of the dataclass that `path` (dotted, list items by index) leads to;
    under `data`, those of the chosen data source (else of every one)."""
    cls = schema
    for part in filter(None, path.split(".")):
        if part.isdigit():
            continue  # a list item: List[X] was unwrapped below
        hints = typing.get_type_hints(cls)
        if part not in hints:
            return []
        cls = hints[part]
        if cls is Any and part == "data" and data in DATASETS:
            cls = DATASETS[data]
        elif cls is Any and part == "data":  # every data source's keys: which one is chosen is not known here
            return sorted({f.name for schema in DATASETS.values() for f in dataclasses.fields(schema)})
        while typing.get_origin(cls) in (list, List, typing.Union):
            cls = next(a for a in typing.get_args(cls) if a is not type(None))
    return [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []


def unknown_key(schema: type, key: str, data: str | None = None) -> SettingsError:
    parent = key.rsplit(".", 1)[0] if "." in key else ""
    name = key.rsplit(".", 1)[-1]
    names = _keys_at(schema, parent, data)
    owners = [d for d, s in DATASETS.items()
              if data in DATASETS and parent == "data" and name in {f.name for f in dataclasses.fields(s)}]
    if owners:  # a key of another data source: the fix is the source, not a spelling
        return SettingsError(key, "<unknown key>", f"data={data} has no such setting; it is one of "
                             f"data={' / data='.join(owners)}; keys of data={data}: {', '.join(names)}")
    guess = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean {parent + '.' if parent else ''}{guess[0]}? " if guess else ""
    return SettingsError(key, "<unknown key>", f"no such setting; {hint}known keys here: {', '.join(names)}")


def suggest_key(schema: type, key: str, data: str | None = None) -> None:
    """Raise a SettingsError with a did-you-mean unless the dotted `key` names a setting (of the
    data source `data`, when given)."""
    parts = key.split(".")
    for n, part in enumerate(parts):
        if part.isdigit():
            continue
        known = _keys_at(schema, ".".join(parts[:n]), data)
        if known and part not in known:
            raise unknown_key(schema, ".".join(parts[: n + 1]), data)


def describe_omegaconf_error(e: OmegaConfBaseException, schema: type | None = None,
                             typed_key: str | None = None, data: str | None = None) -> SettingsError:
    """An OmegaConf merge error as a SettingsError naming the key the user typed."""
    key = typed_key or _user_key(getattr(e, "full_key", None) or "?")
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    if isinstance(e, MissingMandatoryValue):
        return SettingsError(key, "<missing>", "this setting has no value; give one (key=value)")
    if isinstance(e, ConfigKeyError) or "not in" in msg:
        return unknown_key(schema or Settings, key, data)
    value = getattr(e, "value", None)
    for word, phrase in _TYPE_WORDS.items():
        if f"converted to {word}" in msg:
            return SettingsError(key, value, f"expected {phrase}")
    if "is not Optional" in msg or "Non optional field" in msg or "Incompatible value 'None'" in msg:
        return SettingsError(key, value, "this setting cannot be null")
    return SettingsError(key, value, msg)


def load(cfg: DictConfig | dict) -> Settings:
    """Merge a composed config into the schema, check it, and return plain dataclasses."""
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    cfg = {k: v for k, v in cfg.items() if k != "hydra"}
    data = {"name": "mnist", **(cfg.get("data") or {})}  # runs recorded before data.name were MNIST's
    _require(data["name"] in DATASETS, "data.name", data["name"], f"one of {', '.join(DATASETS)} (data=folder for your own images)")
    cfg["data"] = data
    cfg["logger"] = {"mlflow": None, **(cfg.get("logger") or {})}  # runs recorded before logger.mlflow had none
    for group, before in RECORDED_BEFORE.items():  # runs recorded before these keys ran as their values say
        cfg[group] = _with_defaults(cfg.get(group) or {}, before)
    try:
        schema = OmegaConf.structured(Settings)
        schema.data = OmegaConf.structured(DATASETS[data["name"]])
        merged = OmegaConf.merge(schema, cfg)
        settings = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise describe_omegaconf_error(e, typed_key=_locate(cfg, _user_key(getattr(e, "full_key", "") or "")),
                                       data=data["name"]) from None
    return check(settings)

