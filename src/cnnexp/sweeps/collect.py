"""A sweep's runs as rows: each run folder's results.json read back (a missing record becomes a
failed row that says why, one that cannot be read as a run's record an `unreadable` row), its
setting as the overrides it ran with, and what the runs themselves recorded about the sweep — its
replicate keys, the order of its values, what "best" means.

A sweep folder may have been handed over: its records are data, read as records/reading reads
them (no link out, no pipe, nothing past a record's size), and a run folder that is itself a link
is not followed; a record whose values are not what a run writes is named as such: the tables, figures,
statistics and compare downstream see only rows whose numbers are finite numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from cnnexp.config.overrides import key_value
from cnnexp.core.errors import RunError
from cnnexp.records.values import _shown, record_problem
from cnnexp.records.folder import SWEEP_FILES, best_key, results_path, sweep_config_path

UNREADABLE = "unreadable"  # a row's status (never a record's): its results.json is not a run's record
MAX_RECORD_BYTES = 8 << 20  # records are kilobytes (metrics.csv: ~100 bytes an epoch); more is not read


def record_text(path: Path) -> str:
    """A record file's text, read as records/reading reads a folder handed over (no link out of its
    folder, no device or pipe, no file past a record's size, UTF-8 only); RunError for what is not."""
    from cnnexp.records.reading import read_record_text

    path = Path(path)
    text = read_record_text(path.parent, path, MAX_RECORD_BYTES)
    if text is None:
        raise RunError(f"{path}: missing")
    return text


def load_yaml(path: Path) -> Any:
    """A record in YAML (multirun.yaml, config.yaml, .hydra/overrides.yaml) as plain dicts and
    lists, after record_text's checks; interpolations stay text (a handed folder's `${oc.env:…}`
    is not resolved). RunError for one that YAML cannot read."""
    from omegaconf import OmegaConf

    from cnnexp.records.reading import RecordError, plain_yaml

    text = record_text(path)
    try:
        plain_yaml(text, path)
        return OmegaConf.to_container(OmegaConf.create(text), resolve=False) if text.strip() else {}
    except RecordError:
        raise
    except Exception as e:  # yaml's and omegaconf's own errors: the first line of them
        raise RunError(f"{path}: not readable YAML ({str(e).splitlines()[0][:160]})") from None


def lookup(data: Any, dotted: str) -> Any:
    """`a.b.c` in plain dicts (load_yaml's); None where any part is missing or not a mapping."""
    for part in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def read_record(run_dir: Path) -> Tuple[Optional[Dict[str, Any]], str]:
    """(record, "") for a run's results.json that reads as a run's record; (None, "") where there
    is none; (None, why) for one that does not."""
    path = results_path(run_dir)
    if not path.exists() and not path.is_symlink():
        return None, ""
    try:
        data = json.loads(record_text(path))
    except RunError as e:
        return None, str(e).replace(f"{path}: ", f"{path.name}: ", 1)
    except (ValueError, RecursionError) as e:
        return None, f"{path.name}: not JSON ({str(e).splitlines()[0][:120]})"
    try:
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # JSON may spell half a character (\ud800): no terminal or file name takes it
        return None, f"{path.name}: holds text that is not Unicode (a lone surrogate)"
    problem = record_problem(data)
    return (None, f"{path.name}: {problem}") if problem else (data, "")


def recorded_replicate_keys(sweep_dir: Path) -> List[str]:
    """The sweep's own `sweep_options.replicate_keys`, as its first launch recorded them
    (relaunch.recorded_sweep: a resume that names others does not regroup it); conf/train.yaml's
    default for a sweep recorded before the key existed."""
    from cnnexp.config.schema import replicate_keys_default
    from cnnexp.sweeps.relaunch import recorded_sweep

    key = "sweep_options.replicate_keys"
    recorded = recorded_sweep(Path(sweep_dir))
    if not recorded.exists() and not recorded.is_symlink():
        return replicate_keys_default()
    keys = lookup(load_yaml(recorded), key)
    if keys is None:
        return replicate_keys_default()
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise RunError(f"{recorded}: {key} is {_shown(keys)}, not a list of keys (e.g. [seed])")
    return keys


def collect(sweep_dir: Path) -> List[Dict]:
    """One row per run folder, by name; a link among them is shown, not followed."""
    rows = []
    for run_dir in sorted(p for p in Path(sweep_dir).iterdir()
                          if p.is_dir() and not p.name.startswith((".", "_")) and p.name not in SWEEP_FILES):
        results, problem = (None, "a link, not followed (a sweep's runs are folders inside it)") \
            if run_dir.is_symlink() else read_record(run_dir)
        if problem:
            results = {"status": UNREADABLE, "reason": problem}
        elif results is None:
            results = {"status": "failed", "reason": "no results.json (the job did not start or was killed)"}
        elif results.get("status") == "running":  # its lock's process gone: killed, not running (cnnexp.check)
            results = {**results, "status": _liveness(run_dir, results)}
        overrides = [] if problem else own_overrides(run_dir, results.get("overrides", []))
        rows.append({**results, "run": run_dir.name, "overrides": overrides})
    return rows


def _liveness(run_dir: Path, results: Dict) -> str:
    """`running` (its lock held) or `dead`. A lock that is not a plain file — a FIFO, whose opening
    would wait for a writer forever, a link — was not made by a run: no live run holds it."""
    from cnnexp.core.locks import LOCK
    from cnnexp.run.resume import state

    lock = run_dir / LOCK
    if lock.is_symlink() or lock.exists() and not lock.is_file():
        return "dead"
    return state(run_dir, results)


def first_launch(record: Dict) -> Dict:
    """The record an extended run started from: each extension keeps the one it extended."""
    while isinstance(record.get("extends"), dict):
        record = record["extends"]
    return record


def own_overrides(run_dir: Path, overrides: List[str]) -> List[str]:
    """A run resumed by hand (`resume=…/kernel_size=3 trainer.max_epochs=3`) records the resume's
    overrides: its setting is its first launch's (.hydra/overrides.yaml) with the resume's changes."""
    later = [o for o in overrides if key_value(o)[0] != "resume"]
    if len(later) == len(overrides):
        return overrides
    try:
        first = [str(o) for o in load_yaml(run_dir / ".hydra" / "overrides.yaml")]
    except Exception:  # a folder without Hydra's record of its launch (or not a list): the resume's changes alone
        first = []
    changed = {key_value(o)[0] for o in later}
    return [o for o in first if key_value(o)[0] not in changed] + later


def swept(rows: List[Dict]) -> Dict[str, List[str]]:
    """key → the values it takes across the runs, for every override that varies."""
    values: Dict[str, List[str]] = {}
    for r in rows:
        for key, value in map(key_value, r.get("overrides", [])):
            if value not in values.setdefault(key, []):
                values[key].append(value)
    return {k: v for k, v in values.items() if len(v) > 1}


def setting(row: Dict, keys: Sequence[str]) -> Dict[str, str]:
    found = dict(map(key_value, row.get("overrides", [])))
    return {k: found.get(k, "") for k in keys}


def declared_order(sweep_dir: Path) -> Dict[str, List[str]]:
    """key → its values in the order the sweep gave them (multirun.yaml: `model.stride=2,1`,
    `choice(…)`), so that a categorical axis reads as the user wrote it; {} where unknown."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        recorded = load_yaml(sweep_config_path(sweep_dir))
        params = lookup(recorded, "hydra.sweeper.params") or {}
        lines = [str(o) for o in lookup(recorded, "hydra.overrides.task")] + [f"{k}={v}" for k, v in params.items()]
        parsed = OverridesParser.create().parse_overrides(lines)
    except Exception:  # an older or hand-made folder: the runs' own order
        return {}
    return {o.get_key_element().lstrip("+~"): list(o.sweep_string_iterator()) for o in parsed
            if o.is_sweep_override() and not o.is_interval_sweep()}


def ranking(rows: List[Dict]) -> Tuple[str, str]:
    """(results key, "max" | "min"): the runs' own record of what "best" means (their monitor and
    mode, resolved once by the settings check); records from before it had none: val acc, up."""
    recorded = next((r for r in rows if r.get("status") == "ok" and r.get("monitor")), None)
    if recorded:
        return best_key(recorded["monitor"]), recorded["mode"]
    if any(r.get("best_val_acc") is not None for r in rows):
        return "best_val_acc", "max"
    return "best_val_loss", "min"


def better_first(value, mode: str) -> float:
    """A sort key, largest first, for a value ranked by `mode`; missing values last."""
    if value is None:
        return float("-inf")
    return value if mode == "max" else -value


def score(row: Dict, rank: Tuple[str, str]) -> float:
    return better_first(row.get(rank[0]) if row.get("status") == "ok" else None, rank[1])
