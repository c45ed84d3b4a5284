"""Search, not a grid: `hydra/sweeper=optuna` asks an Optuna study for each trial's settings.

    python -m cnnexp.train -m hydra/sweeper=optuna hydra.sweeper.n_trials=30 \
        'model.kernel_size=choice(3,5,7,9)' 'model.stride=choice(1,2)' 'optimizer.lr=tag(log,interval(1e-4,1e-2))'

The study lives in the sweep folder (SWEEP/study.db, Optuna's SQLite storage; or its journal
file, or a database: `hydra.sweeper.storage`; SWEEP/study.json says which). Each trial the study
asks for is composed and checked here, in the worker: settings whose shapes cannot work are told
to the study as failed at once and recorded in their own folder — no process, no data, no
training ("rejected"). The others start through `hydra/launcher`, one the moment a slot of
`n_jobs` frees, chosen while the slots were busy (`hydra_plugins.cnnexp_optuna_sweeper.slots`);
a job finds its trial by its folder's name and reports the monitored metric after every
validation, so the pruner can stop it.

`-m resume=SWEEP` reopens the study: finished trials stay. On a search that is running it joins
as one more worker: workers take turns to ask, so that together they train n_trials, none twice.
Every running trial is stamped with a heartbeat (by its worker and by its job); a trial silent for
`grace_s` lost its worker, and the first worker to notice runs it again in its own folder from
its last.ckpt, with the values it had reported — as it does at once for trials a killed launch
left running, when no other worker is there.

The job's side is `cnnexp.callbacks.report_to_study`.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from omegaconf import DictConfig, OmegaConf

from cnnexp.core import stopping
from cnnexp.core.errors import RunError, SettingsError, UserError
from cnnexp.core.files import write_atomic
from cnnexp.core.locks import WorkerLock, one_at_a_time

log = logging.getLogger("cnnexp")

STUDY_FILE = "study.db"
STUDY_NAME = "cnnexp"
PLUGIN = "hydra_plugins.cnnexp_optuna_sweeper.optuna_sweeper.OptunaSweeper"
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("none", "median", "hyperband")
DIRECTIONS = ("auto", "maximize", "minimize")
STORAGES = ("sqlite", "journal")


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
    steady: bool = True          # start the next trial the moment one ends; false: batches of n_jobs, each waited for
    storage: str = "sqlite"      # sqlite (SWEEP/study.db) | journal (SWEEP/study.journal) | a database URL
    heartbeat_s: float = 30      # a running trial's sign of life, this often
    grace_s: Optional[float] = None  # unheard of this long: its worker is lost (null: 2 × heartbeat_s)
    max_retries: int = 2         # a lost trial runs again from its last.ckpt at most this many times
    workers: int = 0             # K > 0: K worker jobs (hydra/launcher=slurm) join the study; this process waits
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
        require(isinstance(self.steady, bool), "steady", "true or false")
        require(isinstance(self.storage, str) and (self.storage in STORAGES or "://" in self.storage), "storage",
                "sqlite, journal, or a database URL such as postgresql://user@host/db")
        require(isinstance(self.heartbeat_s, (int, float)) and self.heartbeat_s > 0, "heartbeat_s", "seconds > 0")
        require(self.grace_s is None or isinstance(self.grace_s, (int, float)) and self.grace_s > self.heartbeat_s,
                "grace_s", "seconds > hydra.sweeper.heartbeat_s, or null for twice it")
        require(isinstance(self.max_retries, int) and self.max_retries >= 0, "max_retries", "a whole number ≥ 0")
        require(isinstance(self.workers, int) and self.workers >= 0, "workers", "a whole number ≥ 0")

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


def grid_points(space: Dict[str, Any]) -> set:
    """Every point of the grid, each as `point_key` of its settings."""
    values = grid(space)
    return {point_key(dict(zip(values, combo))) for combo in itertools.product(*values.values())}


def point_key(params: Dict[str, Any]) -> Tuple:
    """Settings as a run would be named by them: two trials with the same key ran the same settings."""
    return tuple(sorted((k, as_override(k, v)) for k, v in params.items()))


def trials_left(config: DictConfig) -> int:
    """Trials a search still has to train: n_trials (a grid: at most its points), less those a
    resumed search's study holds already — what its cost estimate is for."""
    from cnnexp.config.compose import task_overrides

    options = SearchOptions.from_node(config.hydra.sweeper)
    space, _ = search_space(param_lines(options) + task_overrides(config.hydra))
    points = grid_points(space) if options.sampler == "grid" else None
    budget = options.n_trials if points is None else min(options.n_trials, len(points))
    sweep_dir = Path(str(config.hydra.sweep.dir))
    if not OmegaConf.select(config, "resume", default=None) or study_record(sweep_dir) is None:
        return budget
    tried = [t for t in load_study(sweep_dir).get_trials(deepcopy=False)
             if t.state.is_finished() and not t.user_attrs.get("superseded")]
    left = budget - sum(1 for t in tried if not skipped(t))
    if points is not None:
        left = min(left, len(points - {point_key(t.params) for t in tried}))
    return max(0, left)


def check_search(config: DictConfig) -> SearchOptions:
    """Before the sweep folder exists: the options and the space parse, and a grid is finite."""
    options = SearchOptions.from_node(config.hydra.sweeper)
    from cnnexp.config.compose import task_overrides

    space, _ = search_space(param_lines(options) + task_overrides(config.hydra))
    if not space:
        raise SettingsError("hydra.sweeper.params", options.params,
                            "nothing to search: give at least one key a choice(…), range(…) or interval(…)")
    if options.sampler == "grid":
        grid(space)
    if options.workers and "submitit" not in str(OmegaConf.select(config, "hydra.launcher._target_", default="")):
        raise SettingsError("hydra.sweeper.workers", options.workers, "worker jobs need hydra/launcher=slurm "
                            "(or hydra/launcher=local to try it here); on one machine, start more workers with "
                            "-m resume=SWEEP")
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


# ------------------------------------------------------------------ the study and where it is stored
STUDY_RECORD = "study.json"      # which storage holds the sweep's study: read by its jobs and by joining workers
JOURNAL_FILE = "study.journal"
HEARTBEAT = "heartbeat"          # a trial's user attr: time.time() of its last sign of life


def storage_url(sweep_dir: Path) -> str:
    return f"sqlite:///{Path(sweep_dir).resolve() / STUDY_FILE}"


def study_record(sweep_dir: Path) -> Optional[Dict[str, str]]:
    """{"storage": sqlite | journal | URL, "study_name": …} of a search's sweep folder, or None
    (a sweep folder from before the record, with its study.db, is sqlite)."""
    path = Path(sweep_dir) / STUDY_RECORD
    if path.is_file():
        return json.loads(path.read_text())
    if (Path(sweep_dir) / STUDY_FILE).is_file():
        return {"storage": "sqlite", "study_name": STUDY_NAME}
    return None


def open_storage(sweep_dir: Path, storage: str):
    import optuna

    if storage == "sqlite":  # many processes write it: wait for the file's lock rather than fail
        return optuna.storages.RDBStorage(storage_url(sweep_dir), engine_kwargs={"connect_args": {"timeout": 120}})
    if storage == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        path = str(Path(sweep_dir).resolve() / JOURNAL_FILE)  # the open lock also works on NFS
        return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    if storage.startswith("postgresql://"):  # the driver the `postgres` extra installs, whatever SQLAlchemy's default
        storage = "postgresql+psycopg://" + storage[len("postgresql://"):]
    return optuna.storages.RDBStorage(storage, engine_kwargs={"pool_pre_ping": True})


def load_study(sweep_dir: Path):
    """The study of a search's sweep folder, wherever its record says it is stored."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    record = study_record(sweep_dir)
    if record is None:
        raise RunError(f"{sweep_dir}: not a search's sweep folder (no {STUDY_RECORD} or {STUDY_FILE})")
    return optuna.load_study(study_name=record["study_name"], storage=open_storage(sweep_dir, record["storage"]))


class Heartbeat:
    """A thread that stamps time.time() into each of its trials' `heartbeat` user attr every
    `every` seconds. The worker beats for the trials in its slots, a trial's job for itself; a
    trial nobody stamps for `grace_s` has lost its worker, which the worker's `watch` looks for
    after each beat, even while its slots are busy. `ends_when_told`: the thread ends once its
    trials are finished (a job's: its worker told the study)."""

    def __init__(self, storage, every: float, ends_when_told: bool = False, watch: Optional[Callable[[], None]] = None):
        self.storage, self.every, self.ends_when_told, self.watch = storage, every, ends_when_told, watch
        self.trial_ids: set = set()
        self.stopped = threading.Event()
        threading.Thread(target=self.loop, daemon=True, name="cnnexp-heartbeat").start()

    def add(self, trial_id: int) -> None:
        self.beat(trial_id)
        self.trial_ids.add(trial_id)

    def discard(self, trial_id: int) -> None:
        self.trial_ids.discard(trial_id)

    def beat(self, trial_id: int) -> bool:
        from optuna.exceptions import UpdateFinishedTrialError

        try:
            self.storage.set_trial_user_attr(trial_id, HEARTBEAT, time.time())
        except UpdateFinishedTrialError:
            return False
        except Exception as e:  # a busy or unreachable database: the next beat may pass
            log.debug("heartbeat of trial id %d not recorded: %s", trial_id, e)
        return True

    def loop(self) -> None:
        while not self.stopped.wait(self.every):
            for trial_id in list(self.trial_ids):
                if not self.beat(trial_id):
                    self.trial_ids.discard(trial_id)
                    if self.ends_when_told and not self.trial_ids:
                        return
            if self.watch is not None:
                try:
                    self.watch()
                except Exception:  # the next beat looks again
                    log.exception("looking for lost trials failed")

    def stop(self) -> None:
        self.stopped.set()


def last_heard(trial) -> float:
    beat = trial.user_attrs.get(HEARTBEAT)
    return float(beat) if beat is not None else trial.datetime_start.timestamp()


def objective(config: DictConfig) -> Tuple[str, str]:
    """(metric, direction): what the runs' best checkpoint is chosen by, as the settings check
    resolves it (cnnexp.tasks.monitor_and_mode) — the study optimises the same "best"."""
    from cnnexp.core.catalogue import monitor_and_mode

    monitor, mode = monitor_and_mode(str(config.model.task),
                                     OmegaConf.select(config, "callbacks.checkpoint.monitor", default="auto"),
                                     OmegaConf.select(config, "callbacks.checkpoint.mode", default="auto"))
    return monitor, "maximize" if mode == "max" else "minimize"


class Search:
    """One worker's loop: keep its slots full (ask → check → start), tell each trial as it ends,
    re-run trials whose worker was lost; until the study holds n_trials trials that trained."""

    def __init__(self, options: SearchOptions, config: DictConfig, compose: Callable[[List[str]], DictConfig],
                 slots, lock: Optional[WorkerLock] = None):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.options, self.compose, self.slots, self.lock = options, compose, slots, lock
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.monitor, direction = objective(config)
        if options.direction != "auto":
            direction = options.direction
        self.space: Dict[str, Any] = {}
        self.fixed: List[str] = []
        self.direction = direction
        self.grace = options.grace_s if options.grace_s is not None else 2 * options.heartbeat_s
        self.job_idx = 0
        self.grid_points: Optional[set] = None  # sampler=grid: its points (point_key), once the space is known

    def open_study(self, arguments: List[str], tell_options: bool = True):
        import optuna

        self.space, self.fixed = search_space(param_lines(self.options) + list(arguments))
        with one_at_a_time(self.sweep_dir):
            record = study_record(self.sweep_dir)
            if record is None:  # the first worker: where the study lives, for the jobs and the workers to come
                storage = self.options.storage
                name = STUDY_NAME if storage in ("sqlite", "journal") else \
                    f"{STUDY_NAME}-{self.sweep_dir.parent.name}-{self.sweep_dir.name}-{uuid.uuid4().hex[:8]}"
                record = {"storage": storage, "study_name": name}
                write_atomic(self.sweep_dir / STUDY_RECORD, json.dumps(record, indent=2) + "\n")
            elif record["storage"] != self.options.storage:
                log.info("the study stays in %s storage, as the sweep's %s records", record["storage"], STUDY_RECORD)
            study = optuna.create_study(storage=open_storage(self.sweep_dir, record["storage"]),
                                        study_name=record["study_name"], load_if_exists=True,
                                        sampler=self.options.sampler_for(self.space), pruner=self.options.make_pruner(),
                                        direction=self.direction)
        if tell_options:
            self.record(study)
        return study

    def record(self, study) -> None:
        """What the study optimises and the options it runs with, for its jobs and later workers."""
        for key, value in (("monitor", self.monitor), ("options", asdict(self.options))):
            if study.user_attrs.get(key) != value:
                study.set_user_attr(key, value)

    def run(self, arguments: List[str]) -> None:
        from optuna.trial import TrialState

        study = self.open_study(arguments, tell_options=False)  # recorded once there is something to run
        with one_at_a_time(self.sweep_dir):
            if self.lock is None or self.lock.alone():  # no other worker: its running trials were left by a kill
                for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                    self.lose(study, t, "it did not finish in an earlier launch")
            earlier = [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING
                       and not t.user_attrs.get("superseded")]
        budget = self.options.n_trials
        if self.options.sampler == "grid":
            self.grid_points = grid_points(self.space)
            budget = min(budget, len(self.grid_points))
        done = self.all_done(study, budget)
        if done:  # asked again, the sampler would only draw what has run (a grid: with Optuna's warnings)
            log.info("search: %s: nothing to run", done)
            self.slots.close()
            return
        self.record(study)
        if earlier:
            log.info("study %s: %d trials trained or training, %d rejected, before this worker",
                     self.sweep_dir / STUDY_RECORD, sum(1 for t in earlier if not skipped(t)),
                     sum(1 for t in earlier if skipped(t)))
            if self.options.seed is not None:  # a seeded sampler would replay the first worker's draws
                study.sampler = self.options.sampler_for(self.space, offset=len(study.trials))
        heartbeat = Heartbeat(study._storage, self.options.heartbeat_s)
        heartbeat.watch = lambda: self.find_lost(study, heartbeat.trial_ids)
        running: Dict[int, Tuple[Any, Path]] = {}  # job idx → (trial, run folder)
        starting: List[Tuple[Any, List[str], Path]] = []  # all chosen before any starts: free slots start together
        ready = None  # steady state: the next trial, asked, composed and checked while the slots are busy
        ahead = self.options.steady and self.slots.ahead
        tick = min(1.0, self.options.heartbeat_s / 2)
        try:
            while True:
                stopping.check()  # a Ctrl-C that landed where raising was unsafe stops the search here
                filling = self.options.steady or not running  # batch: the next batch once this one has ended
                while filling and len(running) + len(starting) < self.slots.capacity:
                    chosen, ready = ready or self.choose(study, budget, heartbeat), None
                    if chosen is None:
                        break
                    starting.append(chosen)
                while starting:
                    self.start(starting.pop(0), running)
                if ahead and ready is None and len(running) == self.slots.capacity:
                    ready = self.choose(study, budget, heartbeat)
                if not running and not self.others_running(study):
                    break
                ended = [(job, running.pop(job.idx)) for job in self.slots.ended(timeout=tick)]
                if ended and ready is not None:  # into the freed slot at once; the study is told after
                    self.start(ready, running)
                    ready = None
                for job, (trial, run_dir) in ended:
                    heartbeat.discard(trial._trial_id)
                    self.finish(study, trial, run_dir, job)
        finally:
            for trial, _, _ in [*starting, *([ready] if ready else [])]:  # chosen, never started: the worker stopped
                heartbeat.discard(trial._trial_id)
                trial.set_user_attr("unstarted", True)
                tell(study, trial, state=TrialState.FAIL)
            heartbeat.stop()
            self.slots.close()
        if self.rejected(study) >= self.options.max_rejected:
            log.warning("the search stopped after %d asked settings failed the shape check or had run already "
                        "(hydra.sweeper.max_rejected=%d): narrow the space to settings that fit, or ask for fewer "
                        "trials than it holds", self.rejected(study), self.options.max_rejected)

    key = staticmethod(point_key)

    def all_done(self, study, budget: int) -> Optional[str]:
        """Why a (resumed) search has nothing left to run — its n_trials trained, or each point of
        its grid tried — or None; never while a trial runs or waits to re-run."""
        trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("superseded")]
        if any(not t.state.is_finished() for t in trials):
            return None
        trained, rejected = sum(1 for t in trials if not skipped(t)), sum(1 for t in trials if skipped(t))
        if self.grid_points is not None and self.grid_points <= {self.key(t.params) for t in trials}:
            return (f"each of the grid's {len(self.grid_points)} points was tried ({trained} trained, "
                    f"{rejected} rejected or asked again)")
        if trained >= budget:
            return (f"{trained} trials trained, as hydra.sweeper.n_trials={self.options.n_trials} asks "
                    "(a larger n_trials extends the search)")
        return None

    def rejected(self, study) -> int:
        return sum(1 for t in study.get_trials(deepcopy=False) if skipped(t))

    def others_running(self, study) -> bool:
        """Trials of other workers still running or waiting to: this worker stays, to re-run them if
        their worker is lost."""
        from optuna.trial import TrialState

        return bool(study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)))

    def next_trial(self, study, budget: int) -> Optional[Tuple[Any, List[str], Path]]:
        """The next trial to start (asked, not run before, shapes checked), or None once the study
        holds `budget` trials that trained or are training. Called while `one_at_a_time`."""
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        live = [t for t in trials if not t.user_attrs.get("superseded")]
        taken = {self.key(t.params): t for t in live if t.state != TrialState.WAITING}
        counted = sum(1 for t in live if not skipped(t))  # trained, training, or waiting to re-run
        waiting = any(t.state == TrialState.WAITING for t in live)
        rejected = sum(1 for t in live if skipped(t))
        # a grid is done once each point was tried: one that cannot fit is never counted, and
        # asking on would only draw points already run until max_rejected
        open_grid = lambda: self.grid_points is None or not self.grid_points <= taken.keys()  # noqa: E731
        while (waiting or (counted < budget and open_grid())) and rejected < self.options.max_rejected:
            trial = study.ask(self.space)  # a trial waiting to re-run comes first
            waiting = bool(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
            retry_of = trial.user_attrs.get("retry_of")
            same = taken.get(self.key(trial.params))
            if same is not None and retry_of is None:  # asked again for settings already run: their result stands
                trial.set_user_attr("duplicate_of", same.number)
                for k, v in same.user_attrs.items():
                    if k in ("rejected", "reason", "run"):
                        trial.set_user_attr(k, v)
                state = same.state if same.state not in (TrialState.RUNNING, TrialState.WAITING) else TrialState.FAIL
                tell(study, trial, values=same.value if state == TrialState.COMPLETE else None, state=state)
                rejected += 1
                continue
            if retry_of is not None:  # what the lost trial reported stays, for the pruner; its grid point too
                storage = study._storage
                lost = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study._study_id, retry_of))
                for step, value in lost.intermediate_values.items():
                    storage.set_trial_intermediate_value(trial._trial_id, step, value)
                for key in ("grid_id", "search_space"):
                    if key in lost.system_attrs:
                        storage.set_trial_system_attr(trial._trial_id, key, lost.system_attrs[key])
            overrides = self.fixed + [as_override(k, v) for k, v in trial.params.items()]
            job = self.compose(overrides)
            run_dir = Path(str(job.hydra.sweep.dir)) / str(job.hydra.sweep.subdir)
            trial.set_user_attr("run", run_dir.name)
            problem = settings_problem(job)
            if problem:
                self.reject(study, trial, run_dir, overrides, problem)
                taken[self.key(trial.params)] = stored(study, trial)
                rejected += 1
                continue
            return trial, overrides, run_dir
        return None

    def choose(self, study, budget: int, heartbeat: "Heartbeat") -> Optional[Tuple[Any, List[str], Path]]:
        """`next_trial`, in this worker's turn; its heartbeat starts before another worker can look for lost trials."""
        with one_at_a_time(self.sweep_dir):
            chosen = self.next_trial(study, budget)
            if chosen is not None:
                heartbeat.add(chosen[0]._trial_id)
        return chosen

    def start(self, chosen: Tuple[Any, List[str], Path], running: Dict[int, Tuple[Any, Path]]) -> None:
        trial, overrides, run_dir = chosen
        running[self.job_idx] = (trial, run_dir)
        job = self.slots.start(self.job_idx, overrides)
        trial.set_user_attr("launched", job.launched)  # written once it is under way
        self.job_idx += 1

    def find_lost(self, study, mine: set) -> None:
        """Trials of other workers unheard of for grace_s: their worker was lost. One worker at a
        time looks, so that one alone takes each."""
        from optuna.trial import TrialState

        with one_at_a_time(self.sweep_dir):
            now = time.time()
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                silent = now - last_heard(t)
                if t._trial_id not in mine and silent > self.grace:
                    self.lose(study, t, f"no heartbeat for {silent:.0f} s (hydra.sweeper.grace_s={self.grace:g})")

    def lose(self, study, t, why: str) -> None:
        """A trial whose worker is gone: failed-stale, and asked again (the first in line) with the
        same settings, so that it continues in its own folder from its last.ckpt — at most
        max_retries times, then failed for good."""
        from optuna.trial import TrialState

        from cnnexp.records.folder import read_results, write_results

        retries = int(t.user_attrs.get("retries", 0))
        storage = study._storage
        storage.set_trial_user_attr(t._trial_id, "lost", why)
        name = t.user_attrs.get("run", f"trial {t.number}")
        if retries < self.options.max_retries:
            log.warning("trial %d (%s) lost: %s; running it again from its last.ckpt (retry %d of %d)",
                        t.number, name, why, retries + 1, self.options.max_retries)
            storage.set_trial_user_attr(t._trial_id, "superseded", True)
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number, "retries": retries + 1})
        else:
            reason = f"lost {retries + 1} times (hydra.sweeper.max_retries={self.options.max_retries}): {why}"
            log.error("trial %d (%s) %s", t.number, name, reason)
            storage.set_trial_user_attr(t._trial_id, "reason", reason)
            run_dir = self.sweep_dir / name
            data = read_results(run_dir)
            if data is not None and data.get("status") in ("running", "interrupted"):
                write_results(run_dir, {**data, "status": "failed", "reason": reason})
        tell(study, t.number, state=TrialState.FAIL)

    def reject(self, study, trial, run_dir: Path, overrides: List[str], problem: str) -> None:
        from optuna.trial import TrialState

        from cnnexp.records.folder import RunRecord

        run_dir.mkdir(parents=True, exist_ok=True)
        RunRecord(run_dir, overrides).refuse(problem, rejected=True, trial=trial.number)
        log.warning("%s: rejected before training, not counted among the trials (study trial #%d): %s",
                    run_dir.name, trial.number, problem)
        trial.set_user_attr("rejected", True)
        trial.set_user_attr("reason", problem)
        tell(study, trial, state=TrialState.FAIL)

    def finish(self, study, trial, run_dir: Path, job) -> None:
        """The run's results.json is the truth, whichever launcher ran it; a job that ended
        without recording a result (its process killed) lost its trial."""
        from optuna.trial import TrialState

        from cnnexp.records.folder import read_results

        if stored(study, trial).state.is_finished():  # taken for lost meanwhile (silent past grace_s): its retry tells
            log.warning("trial %d (%s) ended after it was taken for lost", trial.number, run_dir.name)
            return
        trial.set_user_attr("ended", job.ended)
        results = read_results(run_dir)
        status = (results or {}).get("status")
        if status in (None, "running"):
            with one_at_a_time(self.sweep_dir):
                self.lose(study, stored(study, trial), f"its job ended without a result ({job.error or 'no results.json'})")
            return
        value = results.get(f"best_{self.monitor.replace('/', '_')}")
        trial.set_user_attr("status", status)
        if status == "ok" and value is not None:
            tell(study, trial, values=value)
        elif status == "pruned":
            tell(study, trial, state=TrialState.PRUNED)
        else:
            trial.set_user_attr("reason", str(results.get("reason", status))[:300])
            tell(study, trial, state=TrialState.FAIL)


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
    """A trial that did not train: its settings failed the shape check, or had run already, or its
    worker stopped before it started."""
    return bool(trial.user_attrs.get("rejected") or "duplicate_of" in trial.user_attrs
                or trial.user_attrs.get("unstarted"))


def settings_problem(job: DictConfig) -> Optional[str]:
    """The settings and shape check of `cnnexp.settings`, without data or torch: None if fine."""
    from cnnexp.config.compose import user_config
    from cnnexp.config.settings import load

    try:
        load(OmegaConf.to_container(user_config(job), resolve=True))
    except UserError as e:
        return str(e)
    return None


# ------------------------------------------------------------------ after the search
def report(sweep_dir: Path, write: bool = True) -> None:
    """The study's counts, and (with `write`) its own figures — optimisation history and parameter
    importances — saved as search_history.png and search_importance.png and logged to TensorBoard
    at the sweep's root."""
    import io
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as plots
    from cnnexp.tracking.events import SWEEP_RUN, Events

    study = load_study(sweep_dir)
    monitor = study.user_attrs.get("monitor", "objective")
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    counts = {"trained": sum(1 for t in trials if t.state.is_finished() and not skipped(t)
                             and not t.user_attrs.get("superseded")),
              "pruned": sum(1 for t in trials if t.state == TrialState.PRUNED and not skipped(t)),
              "rejected by the shape check": sum(1 for t in trials if t.user_attrs.get("rejected")
                                                 and "duplicate_of" not in t.user_attrs),
              "asked again for settings already run": sum(1 for t in trials if "duplicate_of" in t.user_attrs)}
    reruns = [t.user_attrs.get("run", t.number) for t in trials if "retry_of" in t.user_attrs]
    if reruns:  # a trial lost twice is re-run twice: one trial, two re-runs
        times = "" if len(set(reruns)) == len(reruns) else f" ({len(reruns)} re-runs in all)"
        counts[f"re-run after their worker was lost{times}"] = len(set(reruns))
    storage = study_record(sweep_dir)["storage"]
    where = sweep_dir / {"sqlite": STUDY_FILE, "journal": JOURNAL_FILE}.get(storage, STUDY_RECORD)
    print(f"\nsearch: {', '.join(f'{n} {what}' for what, n in counts.items())}; study {where}")
    if not complete or not write:
        return
    figures = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib figures experimental
        figures["history"] = history_figure(trials, monitor, study.direction.name.lower(), plt)
        if len(complete) >= 2:
            try:
                figures["importance"] = plots.plot_param_importances(study, target_name=monitor).figure
            except (ValueError, RuntimeError) as e:  # e.g. no parameter varied among finished trials
                log.info("no parameter importances: %s", e)
    with Events(Path(sweep_dir) / SWEEP_RUN) as writer:  # the sweep's own run
        for name, figure in figures.items():
            figure.set_size_inches(7, 4.5)
            figure.tight_layout()
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=110)
            write_atomic(Path(sweep_dir) / f"search_{name}.png", buffer.getvalue())
            writer.figure(f"search/{name}", figure)  # and closes it


def history_figure(trials, monitor: str, direction: str, plt):
    """Each trial's value by its (whole) trial number, the best so far as a step line, pruned
    trials at their last reported value, rejected ones (never trained) marked along the bottom."""
    from matplotlib.ticker import MaxNLocator
    from optuna.trial import TrialState

    fig, ax = plt.subplots(figsize=(7, 4.5))
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
