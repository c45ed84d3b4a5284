"""Trials started one at a time through the configured Hydra launcher and noticed as each ends,
so that the search keeps `hydra.sweeper.n_jobs` of them running (a launcher's own `launch`
returns only when its whole batch has ended).

- hydra/launcher=parallel (joblib): loky's process pool, the one joblib's launcher uses, running
  joblib's own job function; one future per trial.
- hydra/launcher=slurm and its local twin (submitit): one submitit job per trial, the launcher's
  own job callable, submitted when a slot frees and polled until it ends.
- any other launcher (Hydra's basic one): its `launch` of one job, in this process: one slot.

Hydra imports this module at every start: it imports neither optuna nor torch, nor the launchers.
"""

from __future__ import annotations

import logging
import time
from typing import Any, List, Optional, Sequence

log = logging.getLogger("cnnexp")


def _not_launching(record: logging.LogRecord) -> bool:
    """Hydra's basic launcher says `Launching 1 jobs locally` before each trial it is handed one at
    a time: the trial's own `#N : overrides` line already says it."""
    return not record.getMessage().startswith("Launching ")


class Started:
    """One trial's job in a slot: when it was started and when it was seen to end (time.time()).
    (A plain class: Hydra's plugin scan imports this module outside sys.modules, where a
    dataclass cannot be made.)"""

    def __init__(self, idx: int, overrides: List[str]):
        self.idx, self.overrides, self.launched = idx, overrides, time.time()
        self.ended: Optional[float] = None
        self.error: Optional[str] = None
        self.handle: Any = None


class Slots:
    """start(idx, overrides) puts a job in a free slot; ended(timeout) waits up to `timeout`
    seconds for any job to end and returns those that did."""

    capacity = 1
    ahead = False  # jobs run beside this process, which can choose the next trial meanwhile
    interval = 0.2  # seconds between looks at jobs that say nothing when they end

    def __init__(self, launcher, n_jobs: int):
        import threading

        self.launcher, self.running = launcher, []  # type: ignore[var-annotated]
        self.wake = threading.Event()  # set by a job that says when it ends (a pool's future)
        quiet = logging.getLogger("hydra._internal.core_plugins.basic_launcher")
        if _not_launching not in quiet.filters:
            quiet.addFilter(_not_launching)

    def start(self, idx: int, overrides: Sequence[str]) -> Started:
        job = Started(idx, list(overrides))
        log.info("\t#%d : %s", idx, " ".join(overrides))
        self.submit(job)
        self.running.append(job)
        return job

    def ended(self, timeout: float) -> List[Started]:
        deadline = time.monotonic() + timeout
        if not self.running:  # waiting on other workers' trials: look again later
            time.sleep(timeout)
            return []
        while True:
            done = [job for job in self.running if self.poll(job)]
            if done or time.monotonic() >= deadline:
                self.running = [job for job in self.running if job not in done]
                return done
            self.wake.wait(min(self.interval, max(0.0, deadline - time.monotonic())))
            self.wake.clear()

    def submit(self, job: Started) -> None:
        """In this process, to its end (Hydra's basic launcher runs jobs one after another)."""
        try:
            self.launcher.launch([job.overrides], initial_job_idx=job.idx)
        except Exception as e:  # the run records its own failure; this is the launcher's
            job.error = f"{type(e).__name__}: {e}"
        job.ended = time.time()

    def poll(self, job: Started) -> bool:
        return job.ended is not None

    def close(self) -> None:
        pass


class PoolSlots(Slots):
    """hydra/launcher=parallel: joblib's job function in loky's process pool, one future a trial;
    each job is told the pool's size (hydra.launcher.n_jobs), so that it takes its share of cores."""

    ahead, interval = True, 5.0  # a future that ends wakes the search at once (ended_now)

    def __init__(self, launcher, n_jobs: int):
        super().__init__(launcher, n_jobs)
        from joblib.externals.loky import get_reusable_executor

        self.capacity = n_jobs
        self.executor = get_reusable_executor(max_workers=n_jobs)

    def submit(self, job: Started) -> None:
        from hydra.core.singleton import Singleton
        from hydra_plugins.hydra_joblib_launcher._core import execute_job

        job.handle = self.executor.submit(
            execute_job, job.idx, [*job.overrides, f"hydra.launcher.n_jobs={self.capacity}"],
            self.launcher.hydra_context, self.launcher.config, self.launcher.task_function, Singleton.get_state())
        job.handle.add_done_callback(lambda _: self.ended_now(job))

    def ended_now(self, job: Started) -> None:
        job.ended = time.time()
        self.wake.set()

    def poll(self, job: Started) -> bool:
        if not job.handle.done():
            return False
        error = job.handle.exception()
        if error is not None:  # e.g. the job's process was killed: its folder tells the rest
            job.error = f"{type(error).__name__}: {error}"
        return True


class SubmititSlots(Slots):
    """hydra/launcher=slurm (and submitit's local executor): one job a trial, through the
    launcher's own callable and parameters, as its `launch` would submit a job array."""

    ahead = True  # a look at a job: its result file (submitit asks SLURM itself, at most every minute)

    def __init__(self, launcher, n_jobs: int):
        super().__init__(launcher, n_jobs)
        import submitit
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
        from omegaconf import OmegaConf

        self.capacity = n_jobs
        kind, params = launcher._EXECUTOR, launcher.params
        init = {"folder": params["submitit_folder"]}
        if "max_num_timeout" in params:
            init[f"{kind}_max_num_timeout"] = params["max_num_timeout"]
        self.executor = submitit.AutoExecutor(cluster=kind, **init)
        queue = set(OmegaConf.structured(BaseQueueConf).keys())
        self.executor.update_parameters(**{k if k in queue else f"{kind}_{k}": v for k, v in params.items()
                                           if k not in ("submitit_folder", "max_num_timeout")})

    def submit(self, job: Started) -> None:
        from hydra.core.singleton import Singleton

        job.handle = self.executor.submit(self.launcher, job.overrides, "hydra.sweep.dir", job.idx,
                                          f"job_id_for_{job.idx}", Singleton.get_state())

    def poll(self, job: Started) -> bool:
        if job.ended is not None:
            return True
        if not job.handle.done():
            return False
        job.ended = time.time()
        if job.handle.state not in ("COMPLETED", "FINISHED", "UNKNOWN"):  # the run's folder has the details
            job.error = f"job {job.handle.job_id} ended {job.handle.state}"
        return True


def join_as_worker(sweep_dir: str, storage: str = "sqlite") -> int:
    """A worker job's body (`hydra.sweeper.workers=K`): `python -m cnnexp.train -m resume=SWEEP`
    with Hydra's basic launcher, which joins the running search and trains its trials one after
    another in this job's allocation; a database study is named as the launch named it (a resume
    does not open one on the folder's word). A Ctrl-C reaches the worker too (one process group): it is
    waited for, not killed as subprocess.run would, so that it records its trials and, the last
    worker out, writes the summary."""
    import subprocess
    import sys

    from cnnexp.config.overrides import hydra_quoted

    named = [f"hydra.sweeper.storage={hydra_quoted(storage)}"] if "://" in storage else []
    worker = subprocess.Popen([sys.executable, "-m", "cnnexp.train", "-m", f"resume={sweep_dir}",
                               "hydra/sweeper=optuna", "hydra/launcher=basic", "hydra.sweeper.workers=0",
                               "hydra.sweeper.n_jobs=1", *named])
    while True:
        try:
            return worker.wait()
        except KeyboardInterrupt:
            pass


def start_workers(launcher, k: int, sweep_dir: str, storage: str = "sqlite") -> List[Any]:
    """K worker jobs through a submitit launcher (SLURM, or its local twin), each with the
    launcher's resources; returns their submitit jobs."""
    slots = SubmititSlots(launcher, k)
    return [slots.executor.submit(join_as_worker, sweep_dir, storage) for _ in range(k)]


def wait_for(jobs: List[Any]) -> None:
    """Until every worker job has ended (the study holds their trials; the summary follows)."""
    log.info("%d worker jobs joined the search: %s", len(jobs), ", ".join(str(j.job_id) for j in jobs))
    waiting = list(jobs)
    while waiting:
        time.sleep(2)
        for job in [j for j in waiting if j.done()]:
            waiting.remove(job)
            if job.state not in ("COMPLETED", "FINISHED", "UNKNOWN"):
                log.warning("worker job %s ended %s; see %s", job.job_id, job.state, job.paths.stderr)


def slots_for(launcher, n_jobs: int) -> Slots:
    """The slots that start trials through this launcher (by its class, as Hydra instantiated it)."""
    names = {cls.__name__ for cls in type(launcher).__mro__}
    if "JoblibLauncher" in names:
        return PoolSlots(launcher, n_jobs)
    if "BaseSubmititLauncher" in names:
        return SubmititSlots(launcher, n_jobs)
    if n_jobs > 1:
        log.warning("hydra.sweeper.n_jobs=%d: %s runs one job at a time; use hydra/launcher=parallel or "
                    "hydra/launcher=slurm to run trials side by side", n_jobs, type(launcher).__name__)
    return Slots(launcher, n_jobs)

