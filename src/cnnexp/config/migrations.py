"""Records written before a key existed: a config.yaml read back (resume, eval, predict) gets the
value its run actually ran with, so it loads into today's schema unchanged in meaning."""

from __future__ import annotations

from typing import Any, Dict

from cnnexp.core.errors import SettingsError

# Keys added by issue #29: a run recorded before them ran as these values say.
RECORDED_BEFORE = {"optimizer": {"betas": [0.9, 0.999], "nesterov": False},
                   "model": {"pool_first": False, "head": {"init": "xavier"}},
                   "lookahead": {"every": 0, "decay": 0.0}, "tta": {"shift": 0, "margin": 1.0},
                   "callbacks": {"early_stopping": {"patience": 0, "min_delta": 0.0},  # issue #42
                                 "system_metrics": {"every_s": 0}},
                   "augment": {"shift": 0}}  # issue #41


def data_name(cfg: Dict[str, Any]) -> Any:
    """The data a config names; runs recorded before data.name were MNIST's."""
    return _group(cfg.get("data"), "data").get("name", "mnist")


def migrate(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """`cfg` (a plain dict, without its hydra node) with the keys an older record lacks."""
    cfg = dict(cfg)
    cfg["data"] = {"name": "mnist", **_group(cfg.get("data"), "data")}
    cfg["logger"] = {"mlflow": None, "wandb": None, **_group(cfg.get("logger"), "logger")}  # runs recorded before logger.mlflow had none
    for group, before in RECORDED_BEFORE.items():
        if group == "model" and _group(cfg.get("model"), "model").get("name") == "own":
            continue  # model=own (issue #42) has none of the built-in networks' keys
        cfg[group] = _with_defaults(_group(cfg.get(group), group), before, group)
    return cfg


def _group(value: Any, key: str) -> dict:
    """A group of settings as a dict (absent: empty); anything else is a record no run wrote."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SettingsError(key, value, "a group of settings (key: value lines, as conf/ writes it)")
    return value


def _with_defaults(given: dict, before: dict, key: str) -> dict:
    """`given` with the keys of `before` it lacks, at any depth."""
    merged = dict(given)
    for name, value in before.items():
        merged[name] = (_with_defaults(_group(given.get(name), f"{key}.{name}"), value, f"{key}.{name}")
                        if isinstance(value, dict) else given.get(name, value))
    return merged
