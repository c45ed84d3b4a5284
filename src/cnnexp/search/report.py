"""After a search: its counts on the console, its own figures (the optimisation history, the
parameter importances) as PNGs and in TensorBoard at the sweep's root, and how well its slots
were used (`slot_use`, read back by the benchmark)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

from cnnexp.core.console import folded
from cnnexp.core.figures import pyplot, save_png
from cnnexp.search import pareto
from cnnexp.search.study import load_study, study_where
from cnnexp.search.trials import skipped

log = logging.getLogger("cnnexp")


def report(sweep_dir: Path, write: bool = True, study=None, interval: Optional[Callable] = None) -> None:
    """The study's counts, and (with `write`) its own figures — optimisation history and parameter
    importances — saved as search_history.png and search_importance.png and logged to TensorBoard
    at the sweep's root. `study`: as the caller opened it (load_study: read-only). Several
    objectives: the Pareto front first, and its figures instead (`cnnexp.search.pareto`);
    `interval`: the summary's statistic over seed replicates."""
    from optuna.trial import TrialState

    from cnnexp.tracking.events import SWEEP_RUN, Events

    study = load_study(sweep_dir) if study is None else study
    trials = study.get_trials(deepcopy=False)
    where = study_where(sweep_dir)
    several = len(study.directions) > 1
    if several:
        pareto.print_front(sweep_dir, study, trials, interval)
    print("\n" + folded(f"search: {', '.join(f'{n} {what}' for what, n in counts(trials).items())}; study {where}",
                        "  "))
    if not any(t.state == TrialState.COMPLETE for t in trials) or not write:
        return
    trained = pareto.trained_count(study)
    if trained < pareto.RANKED_FROM:
        print(folded(f"search_importance.png: {trained} trained trials are too few to rank settings by importance "
                     f"(< {pareto.RANKED_FROM}); read it as a sketch", "  "))
    drawn = pareto.figures(sweep_dir, study, trials) if several else figures(study, trials)
    with Events(Path(sweep_dir) / SWEEP_RUN) as writer:  # the sweep's own run
        for name, figure in drawn.items():
            figure.set_size_inches(7, 4.5)
            figure.tight_layout()
            save_png(figure, Path(sweep_dir) / f"search_{name}.png", close=False)
            writer.figure(f"search/{name}", figure)  # and closes it


def counts(trials) -> Dict[str, int]:
    """What the closing line counts: trained, pruned, rejected, asked again, re-run."""
    from optuna.trial import TrialState

    found = {"trained": sum(1 for t in trials if t.state.is_finished() and not skipped(t)
                            and not t.user_attrs.get("superseded")),
             "pruned": sum(1 for t in trials if t.state == TrialState.PRUNED and not skipped(t)),
             "rejected by the shape check": sum(1 for t in trials if t.user_attrs.get("rejected")
                                                and "duplicate_of" not in t.user_attrs),
             "asked again for settings already run": sum(1 for t in trials if "duplicate_of" in t.user_attrs)}
    reruns = [str(t.user_attrs.get("run", t.number)) for t in trials if "retry_of" in t.user_attrs]
    if reruns:  # a trial lost twice is re-run twice: one trial, two re-runs
        times = "" if len(set(reruns)) == len(reruns) else f" ({len(reruns)} re-runs in all)"
        found[f"re-run after their worker was lost{times}"] = len(set(reruns))
    return found


def figures(study, trials) -> dict:
    """{"history": …, "importance": …}: Optuna's importances need two finished trials that differ."""
    from optuna.trial import TrialState

    pyplot()  # headless, before Optuna's plots import pyplot
    from optuna.visualization import matplotlib as plots

    monitor = str(study.user_attrs.get("monitor", "objective"))  # a handed-over study may hold anything
    drawn = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib figures experimental
        drawn["history"] = history_figure(trials, monitor, study.direction.name.lower())
        if sum(1 for t in trials if t.state == TrialState.COMPLETE) >= 2:
            try:
                drawn["importance"] = plots.plot_param_importances(study, target_name=monitor).figure
                drawn["importance"].axes[0].set_title("hyperparameter importances" + pareto.few_trials_note(study))
            except (ValueError, RuntimeError) as e:  # e.g. no parameter varied among finished trials
                log.info("no parameter importances: %s", e)
    return drawn


def history_figure(trials, monitor: str, direction: str):
    """Each trial's value by its (whole) trial number, the best so far as a step line, pruned
    trials at their last reported value, rejected ones (never trained) marked along the bottom."""
    from matplotlib.ticker import MaxNLocator
    from optuna.trial import TrialState

    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    done = [t for t in trials if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    rejected = [t for t in trials if t.user_attrs.get("rejected") and "duplicate_of" not in t.user_attrs]
    ax.plot([t.number for t in done], [t.value for t in done], "o", color="tab:blue", label=f"{monitor} (trained)")
    best, line = None, []
    for t in done:
        if best is None or (t.value > best if direction == "maximize" else t.value < best):
            best = t.value
        line.append((t.number, best))
    if line:
        ax.step(*zip(*line), where="post", color="tab:red", alpha=0.7, label="best so far")
    if pruned:
        ax.plot([t.number for t in pruned], [t.intermediate_values[max(t.intermediate_values)] for t in pruned], "o",
                color="lightgray", markeredgecolor="gray", label=f"pruned ({len(pruned)})")
    if rejected:
        ax.plot([t.number for t in rejected], [0.02] * len(rejected), "v", color="dimgray", linestyle="none",
                transform=ax.get_xaxis_transform(), clip_on=False, label=f"rejected by the shape check ({len(rejected)})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(monitor)
    ax.set_title(f"search history: {len(done)} trained, {len(pruned)} pruned, {len(rejected)} rejected", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def slot_use(trials, n_jobs: int) -> Tuple[float, float, float]:
    """(wall seconds from the first launch to the last end, share of slot time idle over it,
    share idle while trials were still to start — before the last launch; after it, slots empty
    as the last trials end, however they were launched)."""
    ran = [(t.user_attrs["launched"], t.user_attrs["ended"]) for t in trials
           if t.user_attrs.get("launched") and t.user_attrs.get("ended")]
    if not ran:
        return 0.0, 0.0, 0.0
    first, last_launch, last_end = min(a for a, _ in ran), max(a for a, _ in ran), max(b for _, b in ran)

    def idle(until: float) -> float:
        busy = sum(max(0.0, min(b, until) - a) for a, b in ran)
        return max(0.0, 1 - busy / (n_jobs * (until - first))) if until > first else 0.0

    return last_end - first, idle(last_end), idle(last_launch)

