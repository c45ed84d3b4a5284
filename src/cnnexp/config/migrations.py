"""Records written before a key existed: a config.yaml read back (resume, eval, predict) gets the
value its run actually ran with, so it loads into today's schema unchanged in meaning."""

from __future__ import annotations

from typing import Any, Dict

# Keys added by issue #29: a run recorded before them ran as these values say.
RECORDED_BEFORE = {"optimizer": {"betas": [0.9, 0.999], "nesterov": False},
                   "model": {"pool_first": False, "head": {"init": "xavier"}},
                   "lookahead": {"every": 0, "decay": 0.0}, "tta": {"shift": 0, "margin": 1.0}}


def migrate(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """`cfg` (a plain dict, without its hydra node) with the keys an older record lacks."""
    cfg = dict(cfg)
    cfg["data"] = {"name": "mnist", **(cfg.get("data") or {})}  # runs recorded before data.name were MNIST's
    cfg["logger"] = {"mlflow": None, **(cfg.get("logger") or {})}  # runs recorded before logger.mlflow had none
    for group, before in RECORDED_BEFORE.items():
        cfg[group] = _with_defaults(cfg.get(group) or {}, before)
    return cfg


def _with_defaults(given: dict, before: dict) -> dict:
    """`given` with the keys of `before` it lacks, at any depth."""
    merged = dict(given)
    for key, value in before.items():
        merged[key] = _with_defaults(given.get(key) or {}, value) if isinstance(value, dict) else given.get(key, value)
    return merged
