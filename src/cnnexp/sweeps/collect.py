"""A sweep's runs as rows: each run folder's results.json read back (a missing or broken record
becomes a failed row that says why), its setting as the overrides it ran with, and what the runs
themselves recorded about the sweep — its replicate keys, the order of its values, what "best"
means."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from cnnexp.config.overrides import key_value
from cnnexp.records.folder import best_key, read_results, sweep_config_path


def recorded_replicate_keys(sweep_dir: Path) -> List[str]:
    """The sweep's own `sweep_options.replicate_keys`, as its first launch recorded them
    (relaunch.recorded_sweep: a resume that names others does not regroup it); conf/train.yaml's
    default for a sweep recorded before the key existed."""
    from omegaconf import OmegaConf

    from cnnexp.config.schema import replicate_keys_default
    from cnnexp.sweeps.relaunch import recorded_sweep

    key = "sweep_options.replicate_keys"
    recorded = recorded_sweep(Path(sweep_dir))
    keys = OmegaConf.select(OmegaConf.load(recorded), key, default=None) if recorded.is_file() else None
    return list(keys) if keys is not None else replicate_keys_default()


def collect(sweep_dir: Path) -> List[Dict]:
    rows = []
    for run_dir in sorted(p for p in Path(sweep_dir).iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        results = read_results(run_dir)
        if results is None:
            results = {"status": "failed", "reason": "no results.json (the job did not start or was killed)"}
        elif not isinstance(results, dict) or not isinstance(results.get("overrides", []), list):
            results = {"status": "failed", "reason": "results.json is not a run record"}
        elif results.get("status") == "running":  # its lock's process gone: killed, not running (cnnexp.check)
            from cnnexp.run.resume import state

            results = {**results, "status": state(run_dir, results)}
        rows.append({"run": run_dir.name, **results, "overrides": own_overrides(run_dir, results.get("overrides", []))})
    return rows


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
    from omegaconf import OmegaConf

    try:
        first = [str(o) for o in OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")]
    except Exception:  # a folder without Hydra's record of its launch: the resume's changes alone
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
    from omegaconf import OmegaConf

    try:
        recorded = OmegaConf.load(sweep_config_path(sweep_dir))
        params = OmegaConf.select(recorded, "hydra.sweeper.params", default=None) or {}
        lines = list(recorded.hydra.overrides.task) + [f"{k}={v}" for k, v in params.items()]
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
