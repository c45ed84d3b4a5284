"""What a multi-objective search optimises (`hydra.sweeper.objectives=[val/acc,macs]`), decided
once: each objective's direction (a metric's from the catalogue — accuracy up, loss down — a
cost's always down), where a trial's value of it comes from, and the trade-offs the trials found:
the non-dominated set (the Pareto front), ordered best trade-off first, and its hypervolume.

Pure Python, no optuna, no torch: the settings check reads it before anything is imported, and
the summary's front is computed here from plain numbers (a test recomputes it apart).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from cnnexp.core.catalogue import TASKS, metric_mode, monitor_and_mode
from cnnexp.core.errors import SettingsError

# The costs a trial knows, each minimised, with where its value comes from (docs/pareto.md).
COSTS = {
    "macs": "multiply-accumulates per image, from the shape plan: known before training, free",
    "params": "learnable parameters, from the shape plan: known before training, free",
    "train_s": "measured: seconds of training steps (results.json train_s)",
    "ms_per_image": "measured: milliseconds per training image, forward and backward at the run's batch size "
                    "(1000 / results.json images_per_s)",
}
PLAN_COSTS = ("macs", "params")  # computed from the shape plan by the worker, before the trial starts
KEY = "hydra.sweeper.objectives"


def known_metrics() -> Tuple[str, ...]:
    return tuple(dict.fromkeys(m for info in TASKS.values() for m in info.metrics))


def check_names(objectives: Any) -> None:
    """The list's form and names, torch- and config-free (SearchOptions calls it)."""
    allowed = f"a list of {', '.join(known_metrics())} (one metric) and costs {', '.join(COSTS)}, e.g. [val/acc,macs]"
    if not isinstance(objectives, (list, tuple)) or not all(isinstance(o, str) and o for o in objectives):
        raise SettingsError(KEY, objectives, allowed)
    unknown = [o for o in objectives if o not in COSTS and o not in known_metrics()]
    if unknown:
        raise SettingsError(KEY, list(objectives), f"{unknown[0]} is neither a metric nor a cost; {allowed}")
    if len(set(objectives)) != len(objectives):
        raise SettingsError(KEY, list(objectives), "each objective once")
    if objectives and len(objectives) < 2:
        raise SettingsError(KEY, list(objectives), "two or more objectives (one metric alone: leave objectives "
                                                   "out, the search optimises the runs' checkpoint metric)")
    if objectives and all(o in PLAN_COSTS for o in objectives):  # nothing a trial's training would tell
        raise SettingsError(KEY, list(objectives), "these costs come from the shape plan, known without training, "
                            "so a search over them alone would train every trial for nothing; name one metric "
                            "the runs measure too, e.g. [val/acc,macs] (python -m cnnexp.shapes gives a setting's "
                            "costs without training)")


def decide(objectives: Sequence[str], task: str, monitor: str, direction: str = "auto") -> List[Dict[str, str]]:
    """[{"name", "direction"}] for a study's objectives, decided once and recorded in the study.
    A metric objective must be the metric the runs' best checkpoint is chosen by (its best value is
    what the run records); at most one."""
    metrics = [o for o in objectives if o not in COSTS]
    if direction != "auto":
        raise SettingsError("hydra.sweeper.direction", direction, "auto with several objectives: each one's "
                            "direction follows from it (accuracy up, loss and costs down)")
    task_metrics = TASKS[task].metrics
    for m in metrics:
        if m not in task_metrics:
            raise SettingsError(KEY, list(objectives), f"{m} is not a metric of the {task} task "
                                f"({', '.join(task_metrics)})")
    if len(metrics) > 1 or (metrics and metrics[0] != monitor):
        other = next(m for m in metrics if m != monitor)
        raise SettingsError(KEY, list(objectives), f"{other}: a metric objective is the runs' checkpoint metric "
                            f"({monitor}); add callbacks.checkpoint.monitor={other}, or name {monitor}")
    return [{"name": o, "direction": "minimize" if o in COSTS or metric_mode(o) == "min" else "maximize"}
            for o in objectives]


def task_monitor(config) -> Tuple[str, str]:
    """(monitor, mode) of a composed config, as the settings check resolves them."""
    from omegaconf import OmegaConf

    return monitor_and_mode(str(config.model.task),
                            OmegaConf.select(config, "callbacks.checkpoint.monitor", default="auto"),
                            OmegaConf.select(config, "callbacks.checkpoint.mode", default="auto"))


def plan_costs(layers) -> Dict[str, int]:
    """The free costs, from a setting's shape plan."""
    from cnnexp.arithmetic.geometry import total_macs, total_params

    return {"macs": int(total_macs(layers)), "params": int(total_params(layers))}


def values_of(objectives: Sequence[Mapping[str, str]], results: Mapping[str, Any],
              plan: Mapping[str, Any]) -> Tuple[Optional[List[float]], str]:
    """A finished trial's value of each objective (from its results.json and its plan's costs), or
    (None, what is missing)."""
    from cnnexp.records.folder import best_key

    values = []
    for o in objectives:
        name = o["name"]
        if name in PLAN_COSTS:
            value = plan.get(name)
        elif name == "ms_per_image":
            rate = results.get("images_per_s")
            value = 1000.0 / rate if isinstance(rate, (int, float)) and rate > 0 else None
        elif name in COSTS:
            value = results.get(name)
        else:
            value = results.get(best_key(name))
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return None, f"no {name} recorded"
        values.append(float(value))
    return values, ""


# ------------------------------------------------------------------ the front, on plain numbers
def as_minimised(values: Sequence[float], directions: Sequence[str]) -> Tuple[float, ...]:
    return tuple(-v if d == "maximize" else v for v, d in zip(values, directions))


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """a is at least as good as b in every objective and better in one."""
    a, b = as_minimised(a, directions), as_minimised(b, directions)
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def front(points: Sequence[Sequence[float]], directions: Sequence[str]) -> List[int]:
    """Indices of the non-dominated points (equal points all stay), in `order`'s order."""
    kept = [i for i, p in enumerate(points) if not any(dominates(q, p, directions) for q in points)]
    return order(points, kept, directions)


def order(points: Sequence[Sequence[float]], kept: Sequence[int], directions: Sequence[str]) -> List[int]:
    """Best trade-off first: by distance to the ideal point (each objective's best on the front),
    each objective scaled by its spread over the front; ties by the first objective."""
    if not kept:
        return []
    scaled = normalised([points[i] for i in kept], directions)
    distance = {i: math.sqrt(sum(x * x for x in s)) for i, s in zip(kept, scaled)}
    return sorted(kept, key=lambda i: (round(distance[i], 12), as_minimised(points[i], directions)))


def normalised(points: Sequence[Sequence[float]], directions: Sequence[str]) -> List[Tuple[float, ...]]:
    """Each objective minimised and scaled to [0, 1] over `points` (0: the best of them)."""
    flipped = [as_minimised(p, directions) for p in points]
    lows = [min(c) for c in zip(*flipped)]
    spans = [(max(c) - lo) or 1.0 for c, lo in zip(zip(*flipped), lows)]
    return [tuple((x - lo) / s for x, lo, s in zip(p, lows, spans)) for p in flipped]


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """The volume minimised `points` dominate up to `reference` (exact, by slicing on the last
    objective: fine for the tens to hundreds of trials a search holds)."""
    inside = [tuple(p) for p in points if all(x < r for x, r in zip(p, reference))]
    if not inside:
        return 0.0
    if len(reference) == 1:
        return reference[0] - min(p[0] for p in inside)
    inside.sort(key=lambda p: p[-1])
    volume = 0.0
    for i, p in enumerate(inside):
        top = inside[i + 1][-1] if i + 1 < len(inside) else reference[-1]
        if top > p[-1]:
            volume += hypervolume([q[:-1] for q in inside[:i + 1]], reference[:-1]) * (top - p[-1])
    return volume


def hypervolume_history(points: Sequence[Sequence[float]], directions: Sequence[str]) -> List[float]:
    """After each of the points in turn, the hypervolume of those so far — every objective scaled
    to [0, 1] over all the points (so objectives of any unit weigh alike), reference (1.1, …)."""
    if not points:
        return []
    scaled = normalised(points, directions)
    reference = (1.1,) * len(directions)
    return [hypervolume(scaled[:n], reference) for n in range(1, len(scaled) + 1)]


# ------------------------------------------------------------------ a study's record of them
def listed(objectives: List[Dict[str, str]]) -> str:
    return ", ".join(f"{o['name']} ({o.get('direction', '?')[:3]})" for o in objectives)


def study_objectives(study) -> Tuple[List[Dict[str, str]], Optional[str]]:
    """The study's objectives, [{"name", "direction"}] — Optuna's own directions, named by its
    metric_names (which the search sets) — and a line where the `objectives` attribute the search
    recorded says otherwise (a handed study.db edited by hand, or by another tool): the front is
    then labelled by the study's own names, never silently by the attribute. Without metric_names
    (a study Optuna made before them), the attribute names them where its directions agree."""
    directions = [d.name.lower() for d in study.directions]
    own = getattr(study, "metric_names", None)
    recorded = study.user_attrs.get("objectives")
    fits = isinstance(recorded, list) and len(recorded) == len(directions) and all(
        isinstance(o, dict) and isinstance(o.get("name"), str) and o.get("direction", d) == d
        for o, d in zip(recorded, directions))
    if isinstance(own, list) and len(own) == len(directions) and all(isinstance(n, str) for n in own):
        found = [{"name": n, "direction": d} for n, d in zip(own, directions)]
    elif fits:
        found = [{"name": o["name"], "direction": d} for o, d in zip(recorded, directions)]
    else:
        found = [{"name": f"objective {i}", "direction": d} for i, d in enumerate(directions)]
    if recorded is None or (fits and [o["name"] for o in recorded] == [o["name"] for o in found]):
        return found, None
    said = listed(recorded) if _listable(recorded) else f"{str(recorded)[:60]!r}"
    return found, (f"its study's recorded objectives ({said}) are not the study's own ({listed(found)}); "
                   "shown by the study's own")


def _listable(recorded: Any) -> bool:
    return isinstance(recorded, list) and all(isinstance(o, dict) and isinstance(o.get("name"), str) and
                                              isinstance(o.get("direction", ""), str) for o in recorded)
