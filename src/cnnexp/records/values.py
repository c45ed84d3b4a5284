"""What a run's results.json may hold — the one check every reader of a record asks (check,
resume, summary, compare): an object whose status is one a run writes, each key a reader acts
on of its type, and every number the tables, figures and statistics read finite, of a sane size,
inside what its metric can be; and the statuses a run writes. What the file is called, and reading
it, are folder.py's."""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List

from cnnexp.core.catalogue import RECORDED, range_of

MAX_NUMBER = 1e15  # no metric, count or speed a run records comes near it

# What results.json's `status` can say, and what each means: docs/records.md#statuses.
STATUSES = {
    "ok": "trained and tested",
    "failed": "stopped by an error (reason says which)",
    "interrupted": "stopped by a signal (Ctrl-C, SIGTERM, a closed console); resume= goes on",
    "pruned": "a search's trial stopped early by its pruner",
    "diverged": "the loss became NaN or infinite",
    "running": "started and not finished, or killed before it could say",
}
STOPPED = ("failed", "interrupted", "pruned", "diverged")  # a record in one of these says why
RESUMABLE = ("running", "interrupted")                      # with a last.ckpt: resume= goes on from it


# The keys of results.json a reader acts on, and the types they hold (None: null is allowed too).
RECORD_TYPES: Dict[str, tuple] = {
    "status": (str,), "reason": (str,), "started": (str,), "overrides": (list,), "extends": (dict, None),
    "seconds": (int, float, None), "seconds_before_resume": (int, float, None), "epochs": (int,),
    "best": (int, float, None), "best_epoch": (int, None), "monitor": (str, None), "mode": (str, None),
    "tested_checkpoint": (str,), "test_acc": (int, float, None), "test_loss": (int, float, None),
    "refused": (bool,), "rejected": (bool,), "mlflow_run_id": (str, None),
    "early_stopping": (dict, None), "wandb_run_id": (str, None),
}


def record_problems(results: Any) -> List[str]:
    """What makes `results` no run record: not a mapping, an unknown status, a number a reader would
    choke on, a key of the wrong type."""
    problem = _value_problem(results)
    if problem:
        return [problem]
    if not isinstance(results, dict):
        return [f"not a run record (a JSON {type(results).__name__ if results is not None else 'null'}, not an object)"]
    if results.get("status") not in tuple(STATUSES):
        return [f"not a run record (status {str(results.get('status'))[:40]!r}; it must be one of {', '.join(STATUSES)})"]
    odd = []
    for key, kinds in RECORD_TYPES.items():
        value = results.get(key)
        if key in results and not (value is None and None in kinds) and \
                not (isinstance(value, tuple(k for k in kinds if k is not None)) and
                     not (isinstance(value, bool) and bool not in kinds)):
            wanted = [_KINDS[k] for k in kinds if not (k is int and float in kinds)]
            odd.append(f"{key} holds {json.dumps(value)[:40]}, where a record holds {' or '.join(wanted)}")
    return odd


_KINDS = {None: "null", str: "text", list: "a list", dict: "an object", int: "a whole number", float: "a number",
          bool: "true or false"}


def _number_problem(key: str, value: Any) -> str:
    """What is wrong with a recorded number ("" when nothing): a number, finite, of a sane size,
    inside what the metric can be (an accuracy in [0, 1])."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{key} is {_shown(value)}, not a number"
    if isinstance(value, float) and not math.isfinite(value) or abs(value) > MAX_NUMBER:
        return f"{key} is {_shown(value)}, not a finite number a run records"
    low, high = range_of(key)
    if low is not None and value < low or high is not None and value > high:
        return f"{key} is {value!r}, outside what it can be ([{low:g}, {high if high is not None else '∞'}])"
    return ""


def _shown(value: Any) -> str:
    text = json.dumps(value)[:40] if not isinstance(value, float) else repr(value)
    return text if len(text) < 40 else text[:37] + "…"


def _value_problem(data: Any) -> str:
    """Why `data` (results.json, parsed) is not a run's record as the summary reads it ("" if it is):
    a JSON object whose status is one a run writes, overrides a list of texts, a reason a text,
    and every number the tables, figures and statistics read a finite number inside its range."""
    if not isinstance(data, dict):
        return f"not a run record (a JSON {type(data).__name__ if data is not None else 'null'}, not an object)"
    status = data.get("status")
    if not isinstance(status, str) or status not in STATUSES:
        return f"status {_shown(status)} is none of a run's ({', '.join(STATUSES)})"
    overrides = data.get("overrides", [])
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        return "overrides is not a list of key=value texts"
    for key in ("reason", "monitor"):
        if data.get(key) is not None and not isinstance(data[key], str):
            return f"{key} is {_shown(data[key])}, not a text"
    if data.get("monitor") and data.get("mode") not in ("max", "min"):
        return f"mode is {_shown(data.get('mode'))}, not max or min"
    if data.get("extends") is not None and not isinstance(data["extends"], dict):
        return "extends is not the record it extended"
    if data.get("epochs") is not None and (not isinstance(data["epochs"], int) or isinstance(data["epochs"], bool)
                                           or not 0 <= data["epochs"] <= MAX_NUMBER):
        return f"epochs is {_shown(data['epochs'])}, not a count"
    # every best_… key: the runs' monitors need not agree, and the first ok run's ranks them all
    numbers = [m.key for m in RECORDED] + ["best"] + sorted(k for k in data if str(k).startswith("best_"))
    return next((p for p in (_number_problem(k, data.get(k)) for k in numbers) if p), "")


def record_problem(data: Any) -> str:
    """The first thing that makes `data` no run record ("" when it is one)."""
    return next(iter(record_problems(data)), "")
