"""Search, not a grid: `hydra/sweeper=optuna` asks an Optuna study for each trial's settings.

    python -m cnnexp.train -m hydra/sweeper=optuna hydra.sweeper.n_trials=30 \
        'model.kernel_size=choice(3,5,7,9)' 'model.stride=choice(1,2)' 'optimizer.lr=tag(log,interval(1e-4,1e-2))'

The study lives in the sweep folder, or in a database (`cnnexp.search.study`). Each trial the study
asks for is composed and checked here, in the worker: settings whose shapes cannot work are told
to the study as failed at once and recorded in their own folder — no process, no data, no
training ("rejected"). The others start through `hydra/launcher`, one the moment a slot of
`n_jobs` frees, chosen while the slots were busy (`cnnexp.search.slots`);
a job finds its trial by its folder's name and reports the monitored metric after every
validation, so the pruner can stop it.

`-m resume=SWEEP` reopens the study: finished trials stay. On a search that is running it joins
as one more worker: workers take turns to ask, so that together they train n_trials, none twice.
Every running trial is stamped with a heartbeat (`Heartbeat`: by its worker and its job); a
trial silent for `grace_s` lost its worker, and the first worker to notice runs it again in its
own folder from its last.ckpt, with the values it had reported — as it does at once for trials a
killed launch left running, when no other worker is there.

The job's side is `cnnexp.callbacks.report_to_study`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from omegaconf import DictConfig

from cnnexp.config.compose import own_arguments
from cnnexp.core import stopping
from cnnexp.core.console import WARNING_STAMP, WIDTH, folded
from cnnexp.core.locks import WorkerLock, one_at_a_time
from cnnexp.records.folder import RESULTS, RESUMABLE, RunRecord, read_results, write_results
from cnnexp.search.options import SearchOptions, param_lines
from cnnexp.search.space import as_override, grid_points, point_key, search_space
from cnnexp.search.study import create_study, named_storage, objective, sampler, study_where
from cnnexp.search.objectives import PLAN_COSTS, decide, values_of
from cnnexp.search.trials import checked, skipped, stored, tell

log = logging.getLogger("cnnexp")

Chosen = Tuple[Any, List[str], Path]  # a trial asked and checked, its overrides, its run folder
HEARTBEAT = "heartbeat"  # a trial's user attr: time.time() of its last sign of life


class Search:
    """One worker's loop: keep its slots full (ask → check → start), tell each trial as it ends,
    re-run trials whose worker was lost; until the study holds n_trials trials that trained."""

    def __init__(self, options: SearchOptions, config: DictConfig, compose: Callable[[List[str]], DictConfig],
                 slots, lock: Optional[WorkerLock] = None):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.options, self.compose, self.slots, self.lock = options, compose, slots, lock
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.named = named_storage(config)  # a database the user named, not one the folder's record names
        self.monitor, direction = objective(config)
        if options.several:  # each objective's direction, decided once and recorded in the study
            self.objectives = decide(options.objectives, str(config.model.task), self.monitor, options.direction)
        else:
            self.objectives = [{"name": self.monitor, "direction": options.direction if options.direction != "auto"
                                else direction}]
        self.space: Dict[str, Any] = {}
        self.fixed: List[str] = []
        self.grace = options.grace
        self.job_idx = 0
        self.grid_points: Optional[set] = None  # sampler=grid: its points (point_key), once the space is known

    def open_study(self, arguments: List[str], tell_options: bool = True):
        self.space, self.fixed = search_space(param_lines(self.options) + list(arguments))
        with one_at_a_time(self.sweep_dir):
            study = create_study(self.sweep_dir, self.options, self.space, self.objectives, self.named)
        if tell_options:
            self.record(study)
        return study

    def record(self, study) -> None:
        """What the study optimises and the options it runs with, for its jobs and later workers."""
        recorded = [("monitor", self.monitor), ("options", asdict(self.options))]
        if self.options.several:
            recorded.append(("objectives", self.objectives))
        for key, value in recorded:
            if study.user_attrs.get(key) != value:
                study.set_user_attr(key, value)
        names = [o["name"] for o in self.objectives]
        if self.options.several and study.metric_names != names:  # optuna-dashboard's axes: val/acc, macs
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # experimental in Optuna
                study.set_metric_names(names)

    def run(self, arguments: List[str]) -> None:
        study = self.open_study(arguments, tell_options=False)  # recorded once there is something to run
        budget = self.take_over(study)
        if budget is None:
            self.slots.close()
            return
        if self.options.several and self.options.pruner != "none":
            log.warning("%s", folded(f"hydra.sweeper.pruner={self.options.pruner}: Optuna prunes no "
                                     "multi-objective study (optuna#3450), so every trial trains to its end and "
                                     "the front is drawn from all of them; to stop early, shorten "
                                     "trainer.max_epochs", "  ", WIDTH - WARNING_STAMP))
        heartbeat = Heartbeat(study._storage, self.options.heartbeat_s)
        heartbeat.watch = lambda: self.find_lost(study, heartbeat.trial_ids)
        self.keep_slots_full(study, budget, heartbeat)
        if self.rejected(study) >= self.options.max_rejected:
            log.warning("the search stopped after %d asked settings failed the shape check or had run already "
                        "(hydra.sweeper.max_rejected=%d): narrow the space to settings that fit, or ask for fewer "
                        "trials than it holds", self.rejected(study), self.options.max_rejected)

    def take_over(self, study) -> Optional[int]:
        """What this worker finds: trials a kill left running (when it is alone) are lost and re-run;
        returns the budget of trials to train, or None (said why) when there is nothing left."""
        from optuna.trial import TrialState

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
            return None
        self.record(study)
        # job numbers go on after the trials trained before ([4/5], job3.log), as a grid's resumed jobs keep theirs
        self.job_idx = sum(1 for t in earlier if t.state.is_finished() and not skipped(t))
        if earlier:
            log.info("study %s:\n    %d trials trained or training, %d rejected, before this worker",
                     study_where(self.sweep_dir), sum(1 for t in earlier if not skipped(t)),
                     sum(1 for t in earlier if skipped(t)))
            if self.options.seed is not None:  # a seeded sampler would replay the first worker's draws
                study.sampler = sampler(self.options, self.space, offset=len(study.trials))
        return budget

    def keep_slots_full(self, study, budget: int, heartbeat: Heartbeat) -> None:
        """The loop: fill free slots (steady: each the moment it frees, its trial chosen while the
        slots were busy; else batches of n_jobs), tell each trial as it ends, until none runs."""
        from optuna.trial import TrialState

        running: Dict[int, Tuple[Any, Path]] = {}  # job idx → (trial, run folder)
        starting: List[Chosen] = []  # all chosen before any starts: free slots start together
        ready = None  # steady state: the next trial, asked, composed and checked while the slots are busy
        ahead = self.options.steady and self.slots.ahead
        tick = min(1.0, self.options.heartbeat_s / 2)
        try:
            while True:
                stopping.raise_if_asked()  # a Ctrl-C that landed where raising was unsafe stops the search here
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

    def next_trial(self, study, budget: int) -> Optional[Chosen]:
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
                tell(study, trial, values=same.values if state == TrialState.COMPLETE else None, state=state)
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
            overrides = own_arguments(self.fixed + [as_override(k, v) for k, v in trial.params.items()])  # model=own
            job = self.compose(overrides)
            run_dir = Path(str(job.hydra.sweep.dir)) / str(job.hydra.sweep.subdir)
            trial.set_user_attr("run", run_dir.name)
            problem, costs = checked(job)
            for name in PLAN_COSTS:  # free: the shape plan's, before any training (a multi-objective study's values)
                if name in costs:
                    trial.set_user_attr(name, costs[name])
            if problem:
                self.reject(study, trial, run_dir, overrides, problem)
                taken[self.key(trial.params)] = stored(study, trial)
                rejected += 1
                continue
            return trial, overrides, run_dir
        return None

    def choose(self, study, budget: int, heartbeat: Heartbeat) -> Optional[Chosen]:
        """`next_trial`, in this worker's turn; its heartbeat starts before another worker can look for lost trials."""
        with one_at_a_time(self.sweep_dir):
            chosen = self.next_trial(study, budget)
            if chosen is not None:
                heartbeat.add(chosen[0]._trial_id)
        return chosen

    def start(self, chosen: Chosen, running: Dict[int, Tuple[Any, Path]]) -> None:
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

        retries = t.user_attrs.get("retries", 0)
        retries = retries if isinstance(retries, int) else 0  # a handed-over study may hold anything
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
            run_dir = self.sweep_dir / str(name)
            data = read_results(run_dir) if own_folder(name) else None  # the study names it: only a folder of the sweep's
            if data is not None and data.get("status") in RESUMABLE:
                write_results(run_dir, {**data, "status": "failed", "reason": reason})
        tell(study, t.number, state=TrialState.FAIL)

    def reject(self, study, trial, run_dir: Path, overrides: List[str], problem: str) -> None:
        from optuna.trial import TrialState

        run_dir.mkdir(parents=True, exist_ok=True)
        RunRecord(run_dir, overrides).refuse(problem, rejected=True, trial=trial.number)
        log.warning("%s", folded(f"{run_dir.name}: rejected before training, not counted among the trials "
                                 f"(study trial #{trial.number}): {problem}", "  ", WIDTH - WARNING_STAMP))
        trial.set_user_attr("rejected", True)
        trial.set_user_attr("reason", problem)
        tell(study, trial, state=TrialState.FAIL)

    def finish(self, study, trial, run_dir: Path, job) -> None:
        """The run's results.json is the truth, whichever launcher ran it; a job that ended
        without recording a result (its process killed) lost its trial."""
        from optuna.trial import TrialState

        if stored(study, trial).state.is_finished():  # taken for lost meanwhile (silent past grace_s): its retry tells
            log.warning("trial %d (%s) ended after it was taken for lost", trial.number, run_dir.name)
            return
        trial.set_user_attr("ended", job.ended)
        results = read_results(run_dir)
        status = (results or {}).get("status")
        if status in (None, "running"):
            with one_at_a_time(self.sweep_dir):
                why = job.error or f"no {RESULTS}"
                self.lose(study, stored(study, trial), f"its job ended without a result ({why})")
            return
        values, missing = values_of(self.objectives, results, stored(study, trial).user_attrs)
        trial.set_user_attr("status", status)
        if status == "ok" and values is not None:
            tell(study, trial, values=values)
        elif status == "pruned":
            tell(study, trial, state=TrialState.PRUNED)
        else:
            trial.set_user_attr("reason", str(results.get("reason", missing if status == "ok" else status))[:300])
            tell(study, trial, state=TrialState.FAIL)


def own_folder(name) -> bool:
    """Whether a run folder's name, as a study holds it, names a folder of the sweep's own (a
    handed-over study may hold `../elsewhere`)."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\0" not in name


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
    return float(beat) if isinstance(beat, (int, float)) else trial.datetime_start.timestamp()
