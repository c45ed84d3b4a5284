"""Settings: a sweep's runs that differ only in replicate keys (`sweep_options.replicate_keys`,
seeds) grouped as one setting, with the mean, sd and 95 % interval of each metric over its runs
that ended ok — clipped to what the metric can be — and the best setting."""

from __future__ import annotations

import statistics
from typing import Dict, List, Sequence, Tuple

from cnnexp.config.overrides import key_value
from cnnexp.core.catalogue import QUALITY, range_of
from cnnexp.sweeps import stats as replicate_stats
from cnnexp.sweeps.collect import UNREADABLE, better_first, ranking, score, setting, swept


def groups(rows: List[Dict], replicate_keys: Sequence[str]) -> Dict[Tuple, List[Dict]]:
    """Runs that differ only in replicate keys, keyed by the other swept values. A run whose record
    cannot be read belongs to no setting: summary_runs.csv lists it, and the summary says so."""
    keys = [k for k in swept(rows) if k not in replicate_keys]
    grouped: Dict[Tuple, List[Dict]] = {}
    for r in rows:
        if r.get("status") == UNREADABLE:
            continue
        grouped.setdefault(tuple(setting(r, keys).items()), []).append(r)
    return grouped


def setting_name(key: Tuple) -> str:
    return ",".join(f"{k.split('.', 1)[-1]}={v}" for k, v in key) or "defaults"


def ok_by_setting(rows: List[Dict], replicate_keys: Sequence[str]) -> Dict[str, List[Dict]]:
    """Setting name (as the group table names it) → its runs that ended ok."""
    return {setting_name(key): [m for m in members if m.get("status") == "ok"]
            for key, members in groups(rows, replicate_keys).items()}


def bounded(key: str, low: float | None, high: float | None) -> Tuple[float | None, float | None, bool, bool]:
    """(low, high, low clipped, high clipped): the interval inside what `key` can be (the catalogue's
    range: an accuracy's interval may reach past 1 with few seeds, a loss's below 0)."""
    floor, ceiling = range_of(key)
    cut_low = low is not None and floor is not None and low < floor
    cut_high = high is not None and ceiling is not None and high > ceiling
    return (floor if cut_low else low), (ceiling if cut_high else high), cut_low, cut_high


def _mean_sd_interval(key: str, values: List[float]) -> Tuple:
    """mean, sd, the 95 % interval's ends inside the metric's range (None with one run: no
    interval) and whether each end was clipped."""
    found = replicate_stats.interval(values)
    if found is None:
        return (None,) * 4 + (False, False)
    return (found.mean, found.sd, *bounded(key, found.low, found.high))  # sd None for one run


def present_quality(rows: List[Dict]) -> list:
    """(key, title) of each metric replicates are averaged over that some run recorded."""
    return [(m.key, m.title) for m in QUALITY if any(r.get(m.key) is not None for r in rows)]


def setting_stats(rows: List[Dict], replicate_keys: Sequence[str]) -> List[Tuple[Tuple, int, int, Dict]]:
    """(setting key, runs, ok runs, {metric: _mean_sd_interval}) per setting, best mean first by the
    runs' monitor: the group table's rows, and the sweep's HParams sessions."""
    present = [k for k, _ in present_quality(rows)]
    entries = []
    for key, members in groups(rows, replicate_keys).items():
        ok = [m for m in members if m.get("status") == "ok"]
        stats = {k: _mean_sd_interval(k, [m[k] for m in ok if m.get(k) is not None]) for k in present}
        entries.append((key, len(members), len(ok), stats))
    metric, mode = ranking(rows)
    return sorted(entries, key=lambda e: better_first(e[3].get(metric, (None,))[0], mode), reverse=True)


def is_replicated(rows: List[Dict], replicate_keys: Sequence[str]) -> bool:
    """Some setting ran more than once, varying a replicate key: the tables group them."""
    return any(len(m) > 1 for m in groups(rows, replicate_keys).values()) and \
        any(k in swept(rows) for k in replicate_keys)


def best_setting(rows: List[Dict], replicate_keys: Sequence[str] = ()) -> Tuple[str, List[str]] | None:
    """(name, overrides) of the best setting: by its mean over the replicates when there are
    replicate keys (the command then leaves them out), else the best run. None if nothing ended ok."""
    key, mode = ranking(rows)
    ok = [r for r in rows if r.get("status") == "ok" and r.get(key) is not None]
    if not ok:
        return None
    if not replicate_keys:
        best = max(ok, key=lambda r: score(r, (key, mode)))
        return best["run"], list(best.get("overrides", []))
    name, chosen = max(groups(ok, replicate_keys).items(),
                       key=lambda g: better_first(statistics.mean(r[key] for r in g[1]), mode))
    kept = [o for o in chosen[0].get("overrides", []) if key_value(o)[0] not in replicate_keys]
    return f"{setting_name(name)} (mean of {len(chosen)})", kept
