"""The one settings check: ranges and choices that types alone cannot express, then the whole shape
plan. It runs group by group in the order of conf/train.yaml and stops at the first bad setting,
named as the user types it (`model.blocks.0.kernel_size`). It also records what it decides:
`auto` input shape, classes, monitor and mode, the data folder's effective size. Pure Python: no
torch.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Tuple

from cnnexp.arithmetic.geometry import ACTIVATIONS, AXES, NORMS, SHORTCUTS, fixes, resolve_blocks
from cnnexp.config.own_network import imports_allowed, is_own
from cnnexp.config.schema import (ACCELERATORS, HEAD_INITS, OPTIMIZERS, POOL_CHOICES, PRECISIONS,
                                  PATH_KEYS, SCHEDULERS, ModelSettings, Settings,
                                  TrainerSettings, WANDB_MODES, check_path)
from cnnexp.core.catalogue import TASKS, monitor_and_mode
from cnnexp.core.errors import SettingsError, ShapeError
from cnnexp.data.facts import DataFacts, facts_of

MNIST_CLASSES = [str(digit) for digit in range(10)]


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise SettingsError(key, value, allowed)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite(v: Any) -> bool:
    """inf passes `> 0` and nan fails every comparison silently: a number must be one."""
    return isinstance(v, (int, float)) and math.isfinite(v)


def validate(s: Settings) -> Settings:
    """Check `s`, fill in what `auto` decides, and return it."""
    require(_is_int(s.seed) and s.seed >= 0, "seed", s.seed, "an integer ≥ 0")
    _check_paths(s)
    data = _check_data(s)
    _check_model(s.model, data)
    _check_training(s, data.shape)
    _check_trainer(s.trainer, s.data.batch_size, data.train_split)
    require(s.performance.channels_last in ("auto", True, False), "performance.channels_last",
            s.performance.channels_last, "auto, true or false")
    _check_callbacks(s)
    if is_own(s.model):
        if imports_allowed():  # a read-only command checks a record's own network without importing it
            s.model.layers  # model=own: its dry forward on the meta device (torch, only for an own network)
    else:
        _check_plan(s.model)
    return s


def _check_paths(s: Settings) -> None:
    """Folders: none empty, however it came (a recipe, a recorded config.yaml, an interpolation);
    the command line's own are refused before Hydra (config.compose.check_override_keys)."""
    for key in (k for k in PATH_KEYS if not k.startswith("hydra.")):  # Hydra's are not settings
        group, _, name = key.rpartition(".")
        check_path(key, getattr(getattr(s, group) if group else s, name))


# ---------------------------------------------------------------- data
def _check_data(s: Settings) -> DataFacts:
    """The batch sizes, then the data's own facts function (data/facts.py: one per data.name)."""
    d = s.data
    require(d.batch_size >= 1, "data.batch_size", d.batch_size, "an integer ≥ 1")
    require(d.eval_batch_size >= 1, "data.eval_batch_size", d.eval_batch_size, "an integer ≥ 1")
    facts = facts_of(d.name)(d, s.seed, s.test_after_fit)
    require(d.batch_size <= facts.train_split, "data.batch_size", d.batch_size,
            f"at most {facts.train_split}, the training split of {facts.source}: a bigger batch "
            "would train no step at all (the last partial batch is dropped)")
    return facts


# ---------------------------------------------------------------- model
def _count(v: Any, least: int) -> bool:
    return _is_int(v) and v >= least


def _per_axis(least: int):
    """An integer ≥ least, or a list of them (one per spatial axis: its length is checked apart)."""
    return lambda v: _count(v, least) or (isinstance(v, (list, tuple)) and len(v) >= 1
                                          and all(_count(x, least) for x in v))


PER_AXIS = " (or one per spatial axis, e.g. [3,5] on images)"
BLOCK_RULES = {  # block key → (test, what is allowed)
    "kernel_size": (_per_axis(1), "an integer ≥ 1" + PER_AXIS),
    "stride": (_per_axis(1), "an integer ≥ 1" + PER_AXIS),
    "dilation": (_per_axis(1), "an integer ≥ 1 (1: no gaps)" + PER_AXIS),
    "groups": (lambda v: _count(v, 1), "an integer ≥ 1 dividing the channels (channels: depthwise)"),
    "norm_groups": (lambda v: _count(v, 1), "an integer ≥ 1 dividing the channels"),
    "padding": (lambda v: v in ("same", "valid") or _per_axis(0)(v), 'an integer ≥ 0 (or one per spatial axis, '
                'e.g. [1,2] on images), or "same" or "valid" given once for every axis (not a list of them)'),
    "bias": (lambda v: v in ("auto", True, False), "auto (off when a norm follows), true or false"),
    "norm": (lambda v: v in NORMS, f"one of {', '.join(NORMS)}"),
    "activation": (lambda v: v in ACTIVATIONS, f"one of {', '.join(ACTIVATIONS)}"),
    "pool": (lambda v: v in POOL_CHOICES, f"one of {', '.join(POOL_CHOICES)}"),
    "pool_kernel": (_per_axis(1), "an integer ≥ 1" + PER_AXIS),
    "pool_stride": (_per_axis(1), "an integer ≥ 1" + PER_AXIS),
    "pool_padding": (_per_axis(0), "an integer ≥ 0" + PER_AXIS),
}
AXIS_KEYS = ("kernel_size", "stride", "dilation", "padding", "pool_kernel", "pool_stride", "pool_padding")


def _check_block_key(key: str, name: str, value: Any, dims: int) -> None:
    test, allowed = BLOCK_RULES[name]
    require(test(value), key, value, allowed)
    if name in AXIS_KEYS and isinstance(value, (list, tuple)):
        require(len(value) == dims, key, list(value),
                f"one integer, or {dims} — one per spatial axis of the {dims}-D input ({AXES[dims]})")


def _check_input_shape(m: ModelSettings, shape: Tuple[int, ...], source: str) -> None:
    """[channels, *spatial] with 1, 2 or 3 spatial axes, and the data's own."""
    if m.input_shape == "auto":  # the network follows the data
        m.input_shape = list(shape)
    require(isinstance(m.input_shape, (list, tuple)) and 2 <= len(m.input_shape) <= 4
            and all(_is_int(v) and v >= 1 for v in m.input_shape),
            "model.input_shape", m.input_shape, "auto, or 2 to 4 integers ≥ 1: [channels, length] (a series), "
            "[channels, height, width] (images) or [channels, depth, height, width] (volumes, clips)")
    if tuple(m.input_shape) == tuple(shape):
        return
    what = {2: "series (channels×length)", 3: "images (channels×height×width)",
            4: "volumes (channels×depth×height×width)"}[len(shape)]
    dims = "" if len(m.input_shape) == len(shape) else (
        f" — a {len(shape) - 1}-D input, where {list(m.input_shape)} is {len(m.input_shape) - 1}-D")
    require(False, "model.input_shape", list(m.input_shape),
            f"{source} holds {'×'.join(map(str, shape))} {what}{dims}, so the network must "
            f"take {list(shape)}; use model.input_shape=auto")


def _check_model(m: ModelSettings, data: DataFacts) -> None:
    """The task, and the input and classes the data decides (`auto`), then the blocks and the head."""
    shape, classes, source = data.shape, data.classes, data.source
    require(m.task in TASKS, "model.task", m.task, f"one of {', '.join(TASKS)}")
    _check_input_shape(m, shape, source)
    if m.num_classes == "auto":
        m.num_classes = len(classes)
    require(_is_int(m.num_classes) and m.num_classes >= 2, "model.num_classes", m.num_classes, "auto, or an integer ≥ 2")
    require(not TASKS[m.task].classifies or m.num_classes == len(classes), "model.num_classes", m.num_classes,
            f"{source} has {len(classes)} classes ({', '.join(classes[:6])}{' …' if len(classes) > 6 else ''}); "
            "use model.num_classes=auto")
    if is_own(m):  # its blocks are its own: the dry forward checks them (validate's last step)
        return
    _check_blocks(m)
    for i, h in enumerate(m.head.hidden):
        require(h >= 1, f"model.head.hidden.{i}", h, "an integer ≥ 1")
    require(0.0 <= m.head.dropout < 1.0, "model.head.dropout", m.head.dropout, "a probability in [0, 1)")
    require(m.head.init in HEAD_INITS, "model.head.init", m.head.init, f"one of {', '.join(HEAD_INITS)}")


def _check_blocks(m: ModelSettings) -> None:
    """Each block's keys (and each shortcut, when set) by its rule; a per-axis list as long as the
    input has spatial axes."""
    dims = len(m.input_shape) - 1
    require(len(m.blocks) >= 1, "model.blocks", [], "at least one conv block")
    for key in SHORTCUTS:  # each shortcut, when set, obeys its block key's rule
        if getattr(m, key) is not None:
            _check_block_key(f"model.{key}", key, getattr(m, key), dims)
    for i, b in enumerate(m.blocks):
        key = f"model.blocks.{i}"
        require(b.channels >= 1, f"{key}.channels", b.channels, "an integer ≥ 1")
        for name in (*SHORTCUTS, "pool_kernel", "pool_stride", "pool_padding"):
            _check_block_key(f"{key}.{name}", name, getattr(b, name), dims)


def _check_plan(m: ModelSettings) -> None:
    """The whole shape chain, with the blocks the network is built with (the shortcuts applied)."""
    m.blocks = resolve_blocks(m)
    try:
        m.layers  # ShapeError names the layer that cannot exist
    except ShapeError as e:
        tries = fixes(m, e.block) if getattr(e, "block", None) else []
        raise ShapeError("\n".join([str(e), *(f"  try: {' '.join(t)}" for t in tries)])) from None


# ---------------------------------------------------------------- training
def _is_setting(s: Settings, key: str) -> bool:
    """`seed`, `data.fold`: a dotted key that names a setting of `s`."""
    node: Any = s
    for part in key.split("."):
        if not dataclasses.is_dataclass(node) or part not in {f.name for f in dataclasses.fields(node)}:
            return False
        node = getattr(node, part)
    return True


def _check_training(s: Settings, shape: Tuple[int, ...]) -> None:
    """How the weights are trained: optimizer, lookahead, test-time shifts, retries, loss, schedule."""
    o = s.optimizer
    require(o.name in OPTIMIZERS, "optimizer.name", o.name, f"one of {', '.join(OPTIMIZERS)}")
    require(_finite(o.lr) and o.lr > 0, "optimizer.lr", o.lr, "a finite learning rate > 0, e.g. 1e-3")
    require(_finite(o.weight_decay) and o.weight_decay >= 0, "optimizer.weight_decay", o.weight_decay,
            "a finite number ≥ 0")
    require(0 <= o.momentum < 1, "optimizer.momentum", o.momentum, "a number in [0, 1)")
    require(len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas), "optimizer.betas", o.betas,
            "two numbers in [0, 1), e.g. [0.9,0.999]")
    require(not o.nesterov or (o.name == "sgd" and o.momentum > 0), "optimizer.nesterov", o.nesterov,
            "false, or true with optimizer.name=sgd and optimizer.momentum > 0")
    la = s.lookahead
    require(_is_int(la.every) and la.every >= 0, "lookahead.every", la.every, "an integer ≥ 0 (0: off)")
    require(0.0 <= la.decay < 1.0, "lookahead.decay", la.decay, "a number in [0, 1), e.g. 0.8")
    require(_is_int(s.tta.shift) and 0 <= s.tta.shift < min(shape[1:]) // 2, "tta.shift", s.tta.shift,
            f"an integer in [0, {min(shape[1:]) // 2}) pixels (0: off)")
    shift = s.augment.shift
    require(_is_int(shift) and shift >= 0 and (shift == 0 or len(shape) == 3 and shift < min(shape[1:]) // 2),
            "augment.shift", shift, f"an integer in [0, {min(shape[1:]) // 2}) pixels (0: off)" if len(shape) == 3 else
            f"0: training images are shifted, and data={s.data.name} holds no 2-D images")
    require(shift == 0 or s.model.task == "classification", "augment.shift", shift,
            f"0 with model.task={s.model.task}: a reconstruction's target would move with its input")
    require(_finite(s.tta.margin) and 0.0 < s.tta.margin <= 1.0, "tta.margin", s.tta.margin,
            "a number in (0, 1]: 1 shifts every image, 0.5 those whose answer is that close")
    require(_is_int(s.sweep_options.retries) and s.sweep_options.retries >= 0, "sweep_options.retries",
            s.sweep_options.retries, "an integer ≥ 0")
    for key in s.sweep_options.replicate_keys:  # a typo would group nothing, silently
        require(_is_setting(s, str(key)), "sweep_options.replicate_keys", key,
                "each a setting's key as a sweep varies it, e.g. [seed] or [seed,data.fold]")
    require(0.0 <= s.loss.label_smoothing < 1.0, "loss.label_smoothing", s.loss.label_smoothing,
            "a number in [0, 1), e.g. 0.1")
    sc = s.scheduler
    require(sc.name in SCHEDULERS, "scheduler.name", sc.name, f"one of {', '.join(SCHEDULERS)}")
    if sc.name == "one_cycle":
        require(_finite(sc.max_lr) and sc.max_lr > 0, "scheduler.max_lr", sc.max_lr, "a finite learning rate > 0")


def _check_trainer(t: TrainerSettings, batch_size: int, train_split: int) -> None:
    require(t.accelerator in ACCELERATORS, "trainer.accelerator", t.accelerator, f"one of {', '.join(ACCELERATORS)}")
    require(t.devices == "auto" or (_is_int(t.devices) and (t.devices >= 1 or t.devices == -1)),
            "trainer.devices", t.devices, '"auto", -1 (all) or an integer ≥ 1')
    require(t.precision in PRECISIONS, "trainer.precision", t.precision, f"one of {', '.join(PRECISIONS)}")
    require(t.max_epochs >= 1 or t.max_epochs == -1, "trainer.max_epochs", t.max_epochs, "an integer ≥ 1 (or -1 with max_steps)")
    require(t.max_steps >= 1 or t.max_steps == -1, "trainer.max_steps", t.max_steps, "an integer ≥ 1, or -1 for no limit")
    require(not (t.max_epochs == -1 and t.max_steps == -1), "trainer.max_epochs", t.max_epochs,
            "-1 trains forever unless trainer.max_steps is set; give a number of epochs or steps")
    require(t.num_nodes >= 1, "trainer.num_nodes", t.num_nodes, "an integer ≥ 1")
    require(t.check_val_every_n_epoch is None or t.check_val_every_n_epoch >= 1, "trainer.check_val_every_n_epoch",
            t.check_val_every_n_epoch, "an integer ≥ 1, or null to validate by val_check_interval alone")
    require(t.gradient_clip_val is None or t.gradient_clip_val >= 0, "trainer.gradient_clip_val",
            t.gradient_clip_val, "a number ≥ 0 (0 or null: no clipping)")
    require(t.num_sanity_val_steps >= -1, "trainer.num_sanity_val_steps", t.num_sanity_val_steps, "an integer ≥ -1")
    batches = _check_batches(t, batch_size, train_split)
    require(t.log_every_n_steps == "auto" or _is_int(t.log_every_n_steps) and t.log_every_n_steps >= 1,
            "trainer.log_every_n_steps", t.log_every_n_steps, "auto, or an integer ≥ 1")
    if t.log_every_n_steps == "auto":  # Lightning's 50 left a 20-batch run without a per-step curve
        steps = max(1, batches // max(1, t.accumulate_grad_batches if _is_int(t.accumulate_grad_batches) else 1))
        t.log_every_n_steps = max(1, min(50, steps // 20))
    require(t.accumulate_grad_batches >= 1, "trainer.accumulate_grad_batches", t.accumulate_grad_batches, "an integer ≥ 1")
    require(t.deterministic in (True, False, "warn"), "trainer.deterministic", t.deterministic, 'true, false or "warn"')


def _check_batches(t: TrainerSettings, batch_size: int, train_split: int) -> int:
    """The limits on batches, and an epoch that trains at least one and validates within itself;
    returns the batches an epoch trains."""
    for name in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        value = getattr(t, name)
        ok = (_is_int(value) and value >= 0) or (isinstance(value, float) and 0.0 <= value <= 1.0)
        require(ok, f"trainer.{name}", value, "a fraction in [0, 1] or a whole number of batches ≥ 0")
    batches = train_split // batch_size
    if _is_int(t.limit_train_batches):
        batches = min(batches, t.limit_train_batches)
    elif isinstance(t.limit_train_batches, float):
        batches = int(batches * t.limit_train_batches)
    require(batches >= 1, "trainer.limit_train_batches", t.limit_train_batches,
            f"at least one batch an epoch (an epoch holds {train_split // batch_size}); 0 trains nothing")
    v = t.val_check_interval
    require((_is_int(v) and 1 <= v <= max(batches, 1)) or (isinstance(v, float) and 0.0 < v <= 1.0),
            "trainer.val_check_interval", v,
            f"a fraction of an epoch in (0, 1], or a number of batches ≤ {batches} (the batches in an epoch)")
    return batches


# ---------------------------------------------------------------- callbacks
def _check_callbacks(s: Settings) -> None:
    """The checkpoint's monitor and mode, decided here once and recorded; the views; the bar."""
    c, task = s.callbacks, s.model.task
    require(c.checkpoint.mode in ("auto", "min", "max"), "callbacks.checkpoint.mode", c.checkpoint.mode, "auto, min or max")
    logged = TASKS[task].metrics
    require(c.checkpoint.monitor == "auto" or c.checkpoint.monitor in logged, "callbacks.checkpoint.monitor",
            c.checkpoint.monitor, f"auto, or a metric the {task} task logs: {', '.join(logged)}")
    c.checkpoint.monitor, c.checkpoint.mode = monitor_and_mode(task, c.checkpoint.monitor, c.checkpoint.mode)
    limit_val = s.trainer.limit_val_batches
    require(not (c.checkpoint.monitor.startswith("val/") and limit_val == 0), "trainer.limit_val_batches",
            limit_val, f"at least one batch: the best checkpoint is chosen by {c.checkpoint.monitor}, "
            "which no validation would log (or callbacks.checkpoint.monitor=train/loss)")
    es = c.early_stopping  # on the monitor and mode just decided: the one the best checkpoint is chosen by
    require(_is_int(es.patience) and es.patience >= 0, "callbacks.early_stopping.patience", es.patience,
            "an integer ≥ 0: validations without improvement before training stops (0: off)")
    require(_finite(es.min_delta) and es.min_delta >= 0, "callbacks.early_stopping.min_delta", es.min_delta,
            "a finite number ≥ 0: a smaller change of the monitor is no improvement")
    require(_finite(c.system_metrics.every_s) and c.system_metrics.every_s >= 0, "callbacks.system_metrics.every_s",
            c.system_metrics.every_s, "seconds ≥ 0 between samples (0: off)")
    w = s.logger.wandb
    require(w is None or w.mode in WANDB_MODES, "logger.wandb.mode", w and w.mode, f"one of {', '.join(WANDB_MODES)}")
    require(c.views.every_n_epochs >= 1, "callbacks.views.every_n_epochs", c.views.every_n_epochs, "an integer ≥ 1")
    require(c.progress_bar_refresh == "auto" or (_is_int(c.progress_bar_refresh) and c.progress_bar_refresh >= 0),
            "callbacks.progress_bar_refresh", c.progress_bar_refresh, "auto, or an integer ≥ 0 (0 hides the bar)")
