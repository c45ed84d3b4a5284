"""Search, not a grid: `hydra/sweeper=optuna` asks an Optuna study for each trial's settings.

    python -m cnnexp.train -m hydra/sweeper=optuna hydra.sweeper.n_trials=30 \
        'model.kernel_size=choice(3,5,7,9)' 'model.stride=choice(1,2)' 'optimizer.lr=tag(log,interval(1e-4,1e-2))'

The study lives in SWEEP/study.db (Optuna's SQLite storage), beside the run folders. Each trial
the study asks for is composed and checked here, in the sweeper process: settings whose shapes
cannot work are told to the study as failed at once and recorded in their own folder — no
process, no data, no training ("rejected"). The others launch through `hydra/launcher` in
batches of `n_jobs`; a job finds its trial by its folder's name and reports the monitored
metric after every validation, so the pruner can stop it. `-m resume=SWEEP` reopens the study:
finished trials stay; trials a killed launch left running run again in their own folders.

The job's side is `cnnexp.callbacks.report_to_study`.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from omegaconf import DictConfig, OmegaConf

from cnnexp.errors import SettingsError, UserError

log = logging.getLogger("cnnexp")

STUDY_FILE = "study.db"
STUDY_NAME = "cnnexp"
PLUGIN = "hydra_plugins.cnnexp_optuna_sweeper.optuna_sweeper.OptunaSweeper"
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("none", "median", "hyperband")
DIRECTIONS = ("auto", "maximize", "minimize")


# ------------------------------------------------------------------ options (conf/hydra/sweeper/optuna.yaml)
@dataclass
class SearchOptions:
    n_trials: int                # trials that train; rejected settings do not count
    n_jobs: int                  # trials launched together through hydra/launcher
    sampler: str
    seed: Optional[int]
    direction: str
    pruner: str
    pruner_startup_trials: int   # median: trials that finish before any is pruned
    max_rejected: int            # stop once this many asked settings could not train (shapes) or had run
    params: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        def require(ok: bool, key: str, allowed: str) -> None:
            if not ok:
                raise SettingsError(f"hydra.sweeper.{key}", getattr(self, key), allowed)

        for key in ("n_trials", "n_jobs", "max_rejected"):
            require(isinstance(getattr(self, key), int) and getattr(self, key) >= 1, key, "a whole number ≥ 1")
        require(isinstance(self.pruner_startup_trials, int) and self.pruner_startup_trials >= 0,
                "pruner_startup_trials", "a whole number ≥ 0")
        require(self.sampler in SAMPLERS, "sampler", f"one of {', '.join(SAMPLERS)}")
        require(self.pruner in PRUNERS, "pruner", f"one of {', '.join(PRUNERS)}")
        require(self.direction in DIRECTIONS, "direction", f"one of {', '.join(DIRECTIONS)}")
        require(self.seed is None or isinstance(self.seed, int), "seed", "a whole number, or null")

    @classmethod
    def from_node(cls, node: DictConfig | dict) -> "SearchOptions":
        plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
        plain.pop("_target_", None)
        names = {f.name for f in fields(cls)}
        for key in plain:
            if key not in names:
                raise SettingsError(f"hydra.sweeper.{key}", plain[key], f"not an option of hydra/sweeper=optuna; "
                                    f"the options are {', '.join(sorted(names))}")
        return cls(**plain)

    def sampler_for(self, space: Dict[str, Any], offset: int = 0):
        import optuna

        seed = None if self.seed is None else self.seed + offset
        if self.sampler == "grid":
            return optuna.samplers.GridSampler(grid(space), seed=seed)
        if self.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed)

    def make_pruner(self):
        import optuna

        if self.pruner == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=self.pruner_startup_trials)
        if self.pruner == "hyperband":
            return optuna.pruners.HyperbandPruner()
        return optuna.pruners.NopPruner()


def is_search(sweeper_node: Any) -> bool:
    return OmegaConf.select(sweeper_node, "_target_", default=None) == PLUGIN


# ------------------------------------------------------------------ the search space
def search_space(lines: Sequence[str]) -> Tuple[Dict[str, Any], List[str]]:
    """Overrides in the official plugin's grammar → ({key: optuna distribution}, fixed overrides).
    choice(…) and comma lists are categorical; range(…) an evenly stepped number; interval(…)
    a continuous one, tag(log, interval(…)) on a log scale. A later line for a key wins."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    chosen: Dict[str, Any] = {}
    for line in lines:
        try:
            o = OverridesParser.create().parse_override(line)
        except HydraException as e:
            key, _, value = line.partition("=")
            raise SettingsError(key, value, f"not a search space; use choice(a,b), range(1,5), interval(0.1,1) or "
                                            f"tag(log,interval(1e-4,1e-2)) ({str(e).splitlines()[0][:120]})") from None
        key = o.get_key_element()
        if not o.is_sweep_override():
            chosen[key] = o.input_line
        elif o.is_interval_sweep():
            value = o.value()
            low, high, on_log = value.start, value.end, "log" in value.tags
            if not low < high or (on_log and low <= 0):
                raise SettingsError(key, line.partition("=")[2], "an interval needs low < high (and low > 0 on a log scale)")
            ints = isinstance(low, int) and isinstance(high, int)
            chosen[key] = IntDistribution(low, high, log=on_log) if ints else FloatDistribution(float(low), float(high), log=on_log)
        else:
            values = list(o.sweep_iterator())
            if not values:  # range(3,3), choice(): Optuna would raise mid-launch
                raise SettingsError(key, line.partition("=")[2], "no values to search: a range(a,b) needs a < b, "
                                                                 "a choice at least one value")
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            if o.is_range_sweep() and numeric and len(values) > 1 and not o.value().shuffle:
                step = values[1] - values[0]
                if all(isinstance(v, int) for v in values):
                    chosen[key] = IntDistribution(values[0], values[-1], step=step)
                else:
                    chosen[key] = FloatDistribution(values[0], values[-1], step=step)
            else:
                chosen[key] = CategoricalDistribution(list(dict.fromkeys(values)))
    space = {k: v for k, v in chosen.items() if not isinstance(v, str)}
    return space, [v for v in chosen.values() if isinstance(v, str)]


def grid(space: Dict[str, Any]) -> Dict[str, list]:
    """The grid sampler's values: categorical choices, stepped ranges; a continuous interval has none."""
    values = {}
    for key, d in space.items():
        if hasattr(d, "choices"):
            values[key] = list(d.choices)
        elif getattr(d, "step", None) is not None:
            n = int(round((d.high - d.low) / d.step)) + 1
            values[key] = [d.low + i * d.step for i in range(n)]
        else:
            raise SettingsError(key, "interval(…)", "the grid sampler needs a finite list of values: use choice(…) "
                                "or range(…), or hydra.sweeper.sampler=tpe")
    return values


def check_search(config: DictConfig) -> SearchOptions:
    """Before the sweep folder exists: the options and the space parse, and a grid is finite."""
    options = SearchOptions.from_node(config.hydra.sweeper)
    from cnnexp.compose import task_overrides

    space, _ = search_space(param_lines(options) + task_overrides(config.hydra))
    if not space:
        raise SettingsError("hydra.sweeper.params", options.params,
                            "nothing to search: give at least one key a choice(…), range(…) or interval(…)")
    if options.sampler == "grid":
        grid(space)
    return options


def param_lines(options: SearchOptions) -> List[str]:
    return [f"{k}={v}" for k, v in options.params.items()]


def as_override(key: str, value: Any) -> str:
    if isinstance(value, float):
        text = format(value, ".6g")  # a readable run name; the run records the value it used
    elif isinstance(value, str) and not re.fullmatch(r"[\w.+\-/:]+", value):
        text = "'" + value.replace("'", "\\'") + "'"
    else:
        text = str(value).lower() if isinstance(value, bool) else str(value)
    return f"{key}={text}"


# ------------------------------------------------------------------ the study
def storage_url(sweep_dir: Path) -> str:
    return f"sqlite:///{Path(sweep_dir).resolve() / STUDY_FILE}"


def objective(config: DictConfig) -> Tuple[str, str]:
    """(metric, direction): what the runs' best checkpoint is chosen by — val/acc up for the
    classifier, val/loss down for the autoencoder, or callbacks.checkpoint.monitor."""
    from cnnexp.tasks import TASKS

    monitor, mode = TASKS[str(config.model.task)].monitor
    chosen = OmegaConf.select(config, "callbacks.checkpoint.monitor", default="auto")
    if chosen != "auto":
        monitor, mode = chosen, OmegaConf.select(config, "callbacks.checkpoint.mode", default="max")
    return monitor, "maximize" if mode == "max" else "minimize"


class Search:
    """The ask → check → launch → tell loop, until n_trials trials have trained."""

    def __init__(self, options: SearchOptions, config: DictConfig, compose: Callable[[List[str]], DictConfig],
                 launch: Callable[[List[List[str]], int], Sequence[Any]]):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.options, self.compose, self.launch = options, compose, launch
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.monitor, direction = objective(config)
        if options.direction != "auto":
            direction = options.direction
        self.space: Dict[str, Any] = {}
        self.fixed: List[str] = []
        self.direction = direction
        self.job_idx = 0

    def open_study(self, arguments: List[str]):
        import optuna

        self.space, self.fixed = search_space(param_lines(self.options) + list(arguments))
        study = optuna.create_study(storage=storage_url(self.sweep_dir), study_name=STUDY_NAME, load_if_exists=True,
                                    sampler=self.options.sampler_for(self.space), pruner=self.options.make_pruner(),
                                    direction=self.direction)
        study.set_user_attr("monitor", self.monitor)
        study.set_user_attr("options", asdict(self.options))
        return study

    def run(self, arguments: List[str]) -> None:
        from optuna.trial import TrialState

        study = self.open_study(arguments)
        self.rerun_killed(study)
        earlier = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished() and not t.user_attrs.get("superseded")]
        finished = {self.key(t.params): t for t in earlier}
        trained = sum(1 for t in earlier if not skipped(t))
        rejected = sum(1 for t in earlier if skipped(t))  # asked, but could not or need not train
        if earlier:
            log.info("study %s: %d trials trained, %d rejected in earlier launches", storage_url(self.sweep_dir),
                     trained, rejected)
            if self.options.seed is not None:  # a seeded sampler would replay its first launch's draws
                study.sampler = self.options.sampler_for(self.space, offset=len(study.trials))
        budget = self.options.n_trials
        if self.options.sampler == "grid":
            budget = min(budget, math.prod(len(v) for v in grid(self.space).values()))
        while trained < budget and rejected < self.options.max_rejected:
            batch: List[Tuple[Any, List[str], Path]] = []
            while len(batch) < min(self.options.n_jobs, budget - trained) and rejected < self.options.max_rejected:
                trial = study.ask(self.space)
                same = finished.get(self.key(trial.params))
                if same is not None:  # the sampler asked again for settings already run: their result stands
                    trial.set_user_attr("duplicate_of", same.number)
                    for k, v in same.user_attrs.items():
                        if k in ("rejected", "reason", "run"):
                            trial.set_user_attr(k, v)
                    state = same.state if same.state != TrialState.RUNNING else TrialState.FAIL
                    tell(study, trial, values=same.value if state == TrialState.COMPLETE else None, state=state)
                    rejected += 1
                    continue
                overrides = self.fixed + [as_override(k, v) for k, v in trial.params.items()]
                job = self.compose(overrides)
                run_dir = Path(str(job.hydra.sweep.dir)) / str(job.hydra.sweep.subdir)
                trial.set_user_attr("run", run_dir.name)
                problem = settings_problem(job)
                if problem:
                    self.reject(study, trial, run_dir, overrides, problem)
                    finished[self.key(trial.params)] = stored(study, trial)
                    rejected += 1
                    continue
                batch.append((trial, overrides, run_dir))
            if not batch:
                break
            self.launch([b[1] for b in batch], self.job_idx)
            self.job_idx += len(batch)
            for trial, _, run_dir in batch:
                self.tell(study, trial, run_dir)
                finished[self.key(trial.params)] = stored(study, trial)
                trained += 1
        if rejected >= self.options.max_rejected:
            log.warning("the search stopped after %d asked settings failed the shape check or had run already "
                        "(hydra.sweeper.max_rejected=%d): narrow the space to settings that fit, or ask for fewer "
                        "trials than it holds", rejected, self.options.max_rejected)

    @staticmethod
    def key(params: Dict[str, Any]) -> Tuple:
        return tuple(sorted((k, as_override(k, v)) for k, v in params.items()))

    def rerun_killed(self, study) -> None:
        """Trials a killed launch left running are asked again, with the same settings, so each
        lands in its own folder and continues from its last.ckpt."""
        from optuna.trial import TrialState

        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            log.info("trial %d (%s) did not finish in an earlier launch; running it again", t.number, t.user_attrs.get("run"))
            study.enqueue_trial(t.params)
            study._storage.set_trial_user_attr(t._trial_id, "superseded", True)
            tell(study, t.number, state=TrialState.FAIL)

    def reject(self, study, trial, run_dir: Path, overrides: List[str], problem: str) -> None:
        from optuna.trial import TrialState

        from cnnexp.run_folder import RunRecord

        run_dir.mkdir(parents=True, exist_ok=True)
        RunRecord(run_dir, overrides).finish("failed", reason=problem, rejected=True, trial=trial.number)
        log.warning("trial %d rejected before training (%s): %s", trial.number, run_dir.name, problem)
        trial.set_user_attr("rejected", True)
        trial.set_user_attr("reason", problem)
        tell(study, trial, state=TrialState.FAIL)

    def tell(self, study, trial, run_dir: Path) -> None:
        """The run's results.json is the truth, whichever launcher ran it."""
        from optuna.trial import TrialState

        from cnnexp.run_folder import read_results

        results = read_results(run_dir) or {"status": "failed", "reason": "no results.json"}
        status = results.get("status")
        value = results.get(f"best_{self.monitor.replace('/', '_')}")
        trial.set_user_attr("status", status)
        if status == "ok" and value is not None:
            tell(study, trial, values=value)
        elif status == "pruned":
            tell(study, trial, state=TrialState.PRUNED)
        else:
            trial.set_user_attr("reason", str(results.get("reason", status))[:300])
            tell(study, trial, state=TrialState.FAIL)


def stored(study, trial):
    """The trial as the study stored it (one row read, not every trial of the study)."""
    return study._storage.get_trial(trial._trial_id)


def tell(study, trial, **outcome) -> None:
    """study.tell; the grid sampler's call to study.stop() once its grid is done is not an error
    here (the trial is stored before it), as the loop ends by its own count."""
    try:
        study.tell(trial, **outcome)
    except RuntimeError as e:
        if "Study.stop" not in str(e):
            raise


def skipped(trial) -> bool:
    """A trial that did not train: its settings failed the shape check, or had run already."""
    return bool(trial.user_attrs.get("rejected") or "duplicate_of" in trial.user_attrs)


def settings_problem(job: DictConfig) -> Optional[str]:
    """The settings and shape check of `cnnexp.settings`, without data or torch: None if fine."""
    from cnnexp.compose import user_config
    from cnnexp.settings import load

    try:
        load(OmegaConf.to_container(user_config(job), resolve=True))
    except UserError as e:
        return str(e)
    return None


# ------------------------------------------------------------------ after the search
def report(sweep_dir: Path) -> None:
    """The study's own figures — optimisation history and parameter importances — saved as
    search_history.png and search_importance.png and logged to TensorBoard at the sweep's root."""
    import io
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as plots
    from torch.utils.tensorboard import SummaryWriter

    from cnnexp.files import write_atomic

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage_url(sweep_dir))
    monitor = study.user_attrs.get("monitor", "objective")
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    counts = {"trained": sum(1 for t in trials if t.state.is_finished() and not skipped(t)
                             and not t.user_attrs.get("superseded")),
              "pruned": sum(1 for t in trials if t.state == TrialState.PRUNED and not skipped(t)),
              "rejected by the shape check": sum(1 for t in trials if t.user_attrs.get("rejected")
                                                 and "duplicate_of" not in t.user_attrs),
              "asked again for settings already run": sum(1 for t in trials if "duplicate_of" in t.user_attrs)}
    print(f"\nsearch: {', '.join(f'{n} {what}' for what, n in counts.items())}; study {sweep_dir / STUDY_FILE}")
    if not complete:
        return
    figures = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib figures experimental
        figures["history"] = plots.plot_optimization_history(study, target_name=monitor).figure
        if len(complete) >= 2:
            try:
                figures["importance"] = plots.plot_param_importances(study, target_name=monitor).figure
            except (ValueError, RuntimeError) as e:  # e.g. no parameter varied among finished trials
                log.info("no parameter importances: %s", e)
    with SummaryWriter(str(sweep_dir)) as writer:
        for name, figure in figures.items():
            figure.set_size_inches(7, 4.5)
            figure.tight_layout()
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=110)
            write_atomic(Path(sweep_dir) / f"search_{name}.png", buffer.getvalue())
            writer.add_figure(f"search/{name}", figure, 0)
            plt.close(figure)
