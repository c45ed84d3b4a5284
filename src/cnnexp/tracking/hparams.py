"""What TensorBoard's HParams shows of a run: its config flattened to the keys a user types, the
few that tell runs apart first, and its real metrics once, at the end. Pure Python but for the
logger it is handed: sweeps, compare and MLflow read the same flattening."""

from __future__ import annotations

from typing import Any, Dict, List

from cnnexp.config.overrides import key_value
from cnnexp.config.own_network import OWN, OWN_KEYS
from cnnexp.core.catalogue import HPARAM_METRICS

# What HParams shows beside the keys a user set: the few that define a run (the rest is in config.yaml);
# the data first (data.problem: a series run's UCR problem), so that runs of different data under one
# --logdir can be told apart and filtered.
HPARAM_KEYS = ("data.name", "data.problem", "model.name", "optimizer.name", "optimizer.lr", "data.batch_size", "trainer.max_epochs", "seed")
NOT_HPARAMS = ("paths.", "data.root", "resume", "hydra", "sweep", "experiment", "print_config")


def flatten(tree: Any, prefix: str = "") -> Dict[str, Any]:
    """{"model": {"blocks": [{"kernel_size": 3}]}} → {"model.blocks.0.kernel_size": 3}: the keys a user
    types on the command line, with list items by index."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        return {prefix: tree if isinstance(tree, (int, float, str, bool)) or tree is None else str(tree)}
    flat: Dict[str, Any] = {}
    for key, value in items:
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def flat_hparams(config: dict, first: List[str] = ()) -> Dict[str, Any]:
    """What distinguishes runs, as TensorBoard's HParams shows it: the keys in `first` (what the
    user set or a sweep varies) with their effective values, then HPARAM_KEYS and the model's
    shortcuts that are set. Numbers stay numbers; booleans as typed; unset (None) keys left out."""
    flat = flatten(config)
    chosen = [k for k in first if k in flat and not k.startswith(NOT_HPARAMS)]
    chosen += [k for k in HPARAM_KEYS if k in flat]
    model = config.get("model") or {}
    blocks = model.get("blocks") or [{}]
    chosen += [f"model.{k}" for k in blocks[0] if f"model.{k}" in flat]  # shortcuts: set for every block
    if model.get("name") == OWN:  # model=own: its class and constructor arguments (model.width) tell runs apart
        own = [f"model.{k}" for k in model if k not in OWN_KEYS] + ["model._target_"]
        chosen += [k for k in flat if k in own or k.startswith(tuple(f"{o}." for o in own))]
    shown = {k: flat[k] for k in dict.fromkeys(chosen) if flat[k] is not None}
    return {k: str(v).lower() if isinstance(v, bool) else v for k, v in shown.items()}


def log_hparams(trainer, config: dict, results: Dict[str, Any], overrides: List[str] = (), status: str = "ok") -> None:
    """HParams once, with real metric values (`run/…`: TensorBoard's HParams tab and parallel
    coordinates) and the run's status, so that a search's pruned trials can be told apart."""
    metrics = {f"run/{k}": float(results[k]) for k in HPARAM_METRICS if results.get(k) is not None}
    first = [key_value(o)[0] for o in overrides]
    for logger in trainer.loggers:
        logger.log_hyperparams({**flat_hparams(config, first), "status": status}, metrics=metrics)
        logger.finalize("success")
