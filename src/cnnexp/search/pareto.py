"""A multi-objective search's report (`hydra.sweeper.objectives=[val/acc,macs]`): the Pareto
front printed best trade-off first, each setting with its objectives and the command that reruns
it; and its figures — every trial with the front drawn (search_pareto.png), the hypervolume as
trials accumulate (search_hypervolume.png) and each parameter's importance to each objective
(search_importance.png). With seed replicates (a searched `seed`), the front is over settings'
means, each with its interval. The arithmetic is `cnnexp.search.objectives`'.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from cnnexp.config.compose import as_typed
from cnnexp.core.console import folded, shell_lines
from cnnexp.core.errors import printable
from cnnexp.core.figures import pyplot
from cnnexp.records.folder import read_results
from cnnexp.search.objectives import front, hypervolume_history, study_objectives
from cnnexp.search.loop import own_folder
from cnnexp.search.space import as_override

log = logging.getLogger("cnnexp")

REPLICATE_KEYS = ("seed",)  # a searched seed: its trials are replicates of one setting
LOG_SCALE = ("macs", "params")
RANKED_FROM = 10  # trained trials below which parameter importances are noise (a setting's share by chance)


def trained_count(study) -> int:
    from optuna.trial import TrialState

    return sum(1 for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE
               and "duplicate_of" not in t.user_attrs)


def few_trials_note(study) -> str:
    """` (5 trials: too few to rank settings, < 10)` for a figure's title; "" from RANKED_FROM on."""
    n = trained_count(study)
    return f"\n({n} trained trials: too few to rank settings, < {RANKED_FROM})" if n < RANKED_FROM else ""


def objectives_of(study, sweep_dir: Optional[Path] = None) -> List[Dict[str, str]]:
    """The study's objectives, as search/study.py reads them; with `sweep_dir`, a mismatch between
    a handed study's record and its own names and directions is said (once, by the printed front)."""
    objectives, problem = study_objectives(study)
    if problem is not None and sweep_dir is not None:
        log.warning("%s", printable(f"{sweep_dir}: {problem}"))
    return objectives


def settings_of(sweep_dir: Path, trials) -> List[Dict[str, Any]]:
    """One entry per setting that trained to the end: its trials' values (one per trial; several
    with seed replicates), its name and the command that reruns it."""
    from optuna.trial import TrialState

    found: Dict[tuple, Dict[str, Any]] = {}
    for t in trials:
        if t.state != TrialState.COMPLETE or "duplicate_of" in t.user_attrs or t.values is None:
            continue
        params = {k: v for k, v in t.params.items() if k not in REPLICATE_KEYS}
        key = tuple(sorted((k, repr(v)) for k, v in params.items()))
        entry = found.setdefault(key, {"values": [], "runs": [], "overrides": None,
                                       "name": ",".join(as_override(k.rsplit(".", 1)[-1], v)
                                                        for k, v in params.items())})
        entry["values"].append(list(t.values))
        run = t.user_attrs.get("run")
        entry["runs"].append(str(run))
        if entry["overrides"] is None:
            entry["overrides"] = rerun_overrides(sweep_dir, run, t.params)
    return list(found.values())


def rerun_overrides(sweep_dir: Path, run: Any, params: Dict[str, Any]) -> List[str]:
    """The overrides the trial's run recorded (its fixed ones too); the study's params otherwise."""
    data = read_results(Path(sweep_dir) / run) if own_folder(run) else None
    recorded = (data or {}).get("overrides")
    if isinstance(recorded, list) and all(isinstance(o, str) for o in recorded):
        return [o for o in recorded if not o.startswith(("hydra.", "resume="))]
    return [as_override(k, v) for k, v in params.items()]


def means(entries: Sequence[Dict[str, Any]]) -> List[List[float]]:
    return [[sum(c) / len(c) for c in zip(*e["values"])] for e in entries]


def shown(name: str, value: float) -> str:
    if name in LOG_SCALE:
        return f"{value:,.0f}"
    if name == "train_s":
        return f"{value:.1f} s"
    if name == "ms_per_image":
        return f"{value:.3f} ms"
    return f"{value:.4f}"


def print_front(sweep_dir: Path, study, trials, interval: Optional[Callable] = None) -> List[Dict[str, Any]]:
    """The front, best trade-off first; returns its entries (their `values`, per trial)."""
    objectives = objectives_of(study, sweep_dir)
    directions = [o["direction"] for o in objectives]
    entries = settings_of(sweep_dir, trials)
    if not entries:
        return []
    points = means(entries)
    kept = front(points, directions)
    replicated = any(len(e["values"]) > 1 for e in entries)
    what = " and ".join(f"{o['name']} ({'max' if o['direction'] == 'maximize' else 'min'})" for o in objectives)
    over = "settings (means over their seeds)" if replicated else "trained trials"
    print("\n" + folded(f"pareto front of {printable(what)}: {len(kept)} of {len(entries)} {over} are "
                        "non-dominated", "  "))
    print(folded("best trade-off first — the one to rerun — by distance to the ideal point (each objective's "
                 "best on the front, scaled by its spread over it); ties: by the first objective, then the "
                 "earlier trial:", "  "))
    for rank, i in enumerate(kept, 1):
        e = entries[i]
        cells = []
        for j, o in enumerate(objectives):
            column = [v[j] for v in e["values"]]
            stat = interval(column) if interval is not None and len(column) > 1 else None
            cells.append(f"{o['name']} {shown(o['name'], points[i][j])}" +
                         (f" [{shown(o['name'], stat.low)}, {shown(o['name'], stat.high)}] over {stat.n}"
                          if stat is not None and stat.low is not None and stat.high != stat.low else ""))
        runs = e["runs"]
        where = "" if runs == [e["name"]] else f" ({runs[0]})" if len(runs) == 1 else f" ({len(runs)} runs)"
        print(folded(f"  {rank}. {printable(e['name'])}{printable(where)}: " + printable(", ".join(cells)), "   "))
        print(shell_lines(["python", "-m", "cnnexp.train", *(printable(shlex.quote(o)) for o in as_typed(e["overrides"]))],
                          "     "))
    return [entries[i] for i in kept]


def figures(sweep_dir: Path, study, trials) -> Dict[str, Any]:
    """{"pareto", "hypervolume", "importance"}: those that can be drawn."""
    objectives = objectives_of(study)
    entries = settings_of(sweep_dir, trials)
    drawn: Dict[str, Any] = {}
    if entries:
        drawn["pareto"] = pareto_figure(entries, objectives)
        drawn["hypervolume"] = hypervolume_figure(trials, objectives)
    importance = importance_figure(study, objectives)
    if importance is not None:
        drawn["importance"] = importance
    return drawn


def pareto_figure(entries: Sequence[Dict[str, Any]], objectives: Sequence[Dict[str, str]]):
    """Every setting (the second objective across, the first up), the dominated faded, the front
    joined in order along the axis and numbered as printed; a log axis for MACs and parameters."""
    directions = [o["direction"] for o in objectives]
    points = means(entries)
    kept = front(points, directions)
    x, y = 1, 0
    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    dominated = [p for i, p in enumerate(points) if i not in kept]
    if dominated:
        ax.plot([p[x] for p in dominated], [p[y] for p in dominated], "o", color="tab:gray", alpha=0.3,
                label=f"dominated ({len(dominated)})")
    for entry, p in zip(entries, points):
        if len(entry["values"]) > 1:  # each replicate, faint, behind its setting's mean
            ax.plot([v[x] for v in entry["values"]], [v[y] for v in entry["values"]], ".", color="tab:gray", alpha=0.2)
    line = sorted((points[i] for i in kept), key=lambda p: p[x])
    ax.plot([p[x] for p in line], [p[y] for p in line], "-", color="tab:red", alpha=0.6, drawstyle="steps-post"
            if len(objectives) == 2 else "default")
    ax.plot([points[i][x] for i in kept], [points[i][y] for i in kept], "o", color="tab:red",
            label=f"pareto front ({len(kept)})")
    for rank, i in enumerate(kept, 1):
        ax.annotate(str(rank), (points[i][x], points[i][y]), textcoords="offset points", fontsize=8,
                    xytext=(4, 4) if rank % 2 else (4, -11))  # neighbours on either side: numbers apart
    if objectives[x]["name"] in LOG_SCALE and min(p[x] for p in points) > 0:
        ax.set_xscale("log")
    if objectives[y]["name"] in LOG_SCALE and min(p[y] for p in points) > 0:
        ax.set_yscale("log")
    far = zoom(ax, [p[y] for p in points], [points[i][y] for i in kept], directions[y])
    if far:
        ax.plot([p[x] for p in points if p[y] in far], [0.02 if directions[y] == "maximize" else 0.98] * sum(
            p[y] in far for p in points), "v" if directions[y] == "maximize" else "^", color="tab:gray", alpha=0.5,
            transform=ax.get_xaxis_transform(), clip_on=False, label=f"far worse, off the axis ({len(far)})")
    arrow = {"maximize": "↑ better", "minimize": "↓ better"}
    ax.set_xlabel(f"{objectives[x]['name']} ({'← better' if directions[x] == 'minimize' else 'better →'})")
    ax.set_ylabel(f"{objectives[y]['name']} ({arrow[directions[y]]})")
    more = f" (first two of {len(objectives)} objectives)" if len(objectives) > 2 else ""
    ax.set_title(f"pareto front: {len(kept)} of {len(points)} settings non-dominated{more}", fontsize=11)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def zoom(ax, ys: Sequence[float], front_ys: Sequence[float], direction: str) -> List[float]:
    """Keep the front readable: a trial far worse than the front (a diverged one) would squash it
    into a line, so the axis stops three front-spans past the front's worst; returns those beyond."""
    lo, hi = min(front_ys), max(front_ys)
    span = max(hi - lo, 0.05 * max(abs(hi), abs(lo), 1e-12))
    worst = lo - 3 * span if direction == "maximize" else hi + 3 * span
    far = [v for v in ys if (v < worst if direction == "maximize" else v > worst)]
    if far and ax.get_yscale() == "linear":
        ax.set_ylim(*((worst, hi + 0.5 * span) if direction == "maximize" else (lo - 0.5 * span, worst)))
        return far
    return []


def hypervolume_figure(trials, objectives: Sequence[Dict[str, str]]):
    """The hypervolume after each trained trial, in the order they ended (objectives scaled to
    [0, 1] over all trials, reference 1.1 each: it only grows, and flattens as the front settles)."""
    from optuna.trial import TrialState

    done = sorted((t for t in trials if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs
                   and t.values is not None), key=lambda t: (t.datetime_complete is None, t.datetime_complete, t.number))
    history = hypervolume_history([list(t.values) for t in done], [o["direction"] for o in objectives])
    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    from matplotlib.ticker import MaxNLocator

    ax.plot(range(1, len(history) + 1), history, "o-", color="tab:blue")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trained trials")
    ax.set_ylabel("hypervolume (objectives scaled to [0, 1])")
    ax.set_title(f"hypervolume of {' × '.join(o['name'] for o in objectives)} as trials accumulate", fontsize=11)
    ax.grid(alpha=0.3)
    return fig


def importance_figure(study, objectives: Sequence[Dict[str, str]]):
    """Each parameter's importance to each objective (Optuna's default evaluator, asked of the
    objective's good end: a maximised one negated), grouped bars; None where Optuna cannot tell
    (fewer than two trials, nothing varied)."""
    import warnings

    import optuna

    found = {}
    for j, o in enumerate(objectives):
        sign = -1.0 if o["direction"] == "maximize" else 1.0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # PED-ANOVA's reminder that it ranks low values: the sign sees to it
                found[o["name"]] = optuna.importance.get_param_importances(
                    study, target=lambda t, j=j, sign=sign: sign * t.values[j])
        except (ValueError, RuntimeError, ZeroDivisionError) as e:
            log.info("no parameter importances for %s: %s", o["name"], e)
    if not found:
        return None
    params = sorted({p for imp in found.values() for p in imp})
    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    height = 0.8 / len(found)
    for j, (name, imp) in enumerate(found.items()):
        ax.barh([i + j * height for i in range(len(params))], [imp.get(p, 0.0) for p in params], height=height,
                label=name)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(params))], params)
    ax.set_xlabel("importance to the objective's good end (each objective's sum to 1)")
    ax.set_title("which settings moved which objective" + few_trials_note(study), fontsize=11)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="x")
    return fig

