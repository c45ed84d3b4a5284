"""A search's study and where it is stored: the sweep folder's study.json says which storage
(SWEEP/study.db, Optuna's SQLite; SWEEP/study.journal, its journal file; or a database URL);
jobs and joining workers open the study from it. What the study optimises (`objective`), the
sampler and pruner it asks with, and the heartbeat that says a running trial's worker is alive.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from omegaconf import DictConfig, OmegaConf

from cnnexp.core.errors import RunError
from cnnexp.core.files import write_atomic
from cnnexp.search.options import SearchOptions
from cnnexp.search.space import grid

log = logging.getLogger("cnnexp")

STUDY_FILE = "study.db"
STUDY_NAME = "cnnexp"
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


def create_study(sweep_dir: Path, options: SearchOptions, space: Dict[str, Any], direction: str):
    """The sweep's study, created by its first worker (which records where it lives, for the jobs
    and the workers to come) and loaded by the others. Called while `one_at_a_time`."""
    import optuna

    record = study_record(sweep_dir)
    if record is None:
        storage = options.storage
        name = STUDY_NAME if storage in ("sqlite", "journal") else \
            f"{STUDY_NAME}-{sweep_dir.parent.name}-{sweep_dir.name}-{uuid.uuid4().hex[:8]}"
        record = {"storage": storage, "study_name": name}
        write_atomic(sweep_dir / STUDY_RECORD, json.dumps(record, indent=2) + "\n")
    elif record["storage"] != options.storage:
        log.info("the study stays in %s storage, as the sweep's %s records", record["storage"], STUDY_RECORD)
    return optuna.create_study(storage=open_storage(sweep_dir, record["storage"]), study_name=record["study_name"],
                               load_if_exists=True, sampler=sampler(options, space), pruner=pruner(options),
                               direction=direction)


def sampler(options: SearchOptions, space: Dict[str, Any], offset: int = 0):
    """hydra.sweeper.sampler; `offset`: a joining worker's, so that a seeded sampler does not replay the first's draws."""
    import optuna

    seed = None if options.seed is None else options.seed + offset
    if options.sampler == "grid":
        return optuna.samplers.GridSampler(grid(space), seed=seed)
    if options.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def pruner(options: SearchOptions):
    import optuna

    if options.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=options.pruner_startup_trials)
    if options.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def objective(config: DictConfig) -> Tuple[str, str]:
    """(metric, direction): what the runs' best checkpoint is chosen by, as the settings check
    resolves it (cnnexp.core.catalogue.monitor_and_mode) — the study optimises the same "best"."""
    from cnnexp.core.catalogue import monitor_and_mode

    monitor, mode = monitor_and_mode(str(config.model.task),
                                     OmegaConf.select(config, "callbacks.checkpoint.monitor", default="auto"),
                                     OmegaConf.select(config, "callbacks.checkpoint.mode", default="auto"))
    return monitor, "maximize" if mode == "max" else "minimize"



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

