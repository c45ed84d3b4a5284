"""The Hydra callback (conf/hydra/default.yaml): checks a run before Hydra creates its folder,
names and de-duplicates a sweep's runs, and prints the sweep's summary at its end."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from cnnexp.config.compose import task_overrides, user_config
from cnnexp.core.console import SWEEP_REFUSED, SWEEP_SIZE
from cnnexp.core.errors import UserError, fail
from cnnexp.records.folder import check_writable, is_sweep, records_in, summary_path
from cnnexp.core.console import command


class SettingsCheck(Callback):
    sweep_dir = None  # the sweep under way, so an interrupted one still gets its summary
    lock = None
    launch = None     # a resumed sweep's .resume-<time>/, where this launch's own records go
    before = None     # a resumed sweep's runs as this launch found them (relaunch.runs_state)
    replicate_keys = None  # the sweep's sweep_options.replicate_keys; None: as its record says (summary)
    config = None     # the sweep's config, as launched: a grid's jobs named from it (record_unstarted)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from cnnexp.run.lifecycle import hold_run_folder
        from cnnexp.run.preflight import check_run

        try:
            resume = OmegaConf.select(config, "resume", default=None)
            if resume and Path(str(resume)).expanduser().is_dir():  # before Hydra appends to its train.log
                from cnnexp.records.reading import refuse_links_out

                refuse_links_out(Path(str(resume)).expanduser(), "resume")
                from cnnexp.run.outcome import RESUME_LAUNCH

                RESUME_LAUNCH["folder"] = Path(str(config.hydra.run.dir)).expanduser() / str(config.hydra.output_subdir)
            if not resume:
                claimable(config, "run")
            check_run(user_config(config), task_overrides(config.hydra))  # imports torch only once the settings passed
            if not OmegaConf.select(config, "resume", default=None):
                hold_run_folder(config)  # locked before Hydra writes there: two runs into one folder
        except UserError as e:
            fail(e)
        except OSError as e:  # Hydra would make it a warning, then a traceback
            from cnnexp.core.files import os_error_line

            fail(os_error_line(e))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Each job is checked on its own (a bad one is recorded as failed); the folder is common.
        try:
            recorded = _open_sweep(config)
        except UserError as e:
            SettingsCheck.abandon()
            fail(e)
        except OSError as e:
            from cnnexp.core.files import os_error_line

            SettingsCheck.abandon()
            fail(os_error_line(e))
        except Exception:  # Hydra would turn it into a warning and sweep on half set up
            SettingsCheck.abandon()
            traceback.print_exc()
            raise SystemExit(1)
        if "submitit" in str(OmegaConf.select(config, "hydra.launcher._target_", default="")):
            from cnnexp.run.slurm import QuietSacct

            logging.getLogger("submitit").addFilter(QuietSacct())
        SettingsCheck.sweep_dir = Path(str(config.hydra.sweep.dir))
        SettingsCheck.config = config
        keys = OmegaConf.select(recorded if recorded is not None else config, "sweep_options.replicate_keys",
                                default=None)  # a resume groups as the first launch did
        SettingsCheck.replicate_keys = None if keys is None else tuple(keys)
        self.sweep_dir, self.launch = SettingsCheck.sweep_dir, SettingsCheck.launch  # travel with the callback to job processes

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        restore_record(getattr(self, "sweep_dir", None), getattr(self, "launch", None))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from cnnexp.core.locks import last_out
        from cnnexp.tracking.loggers import close_sweep
        from cnnexp.sweeps.relaunch import forget_launch, ran_nothing
        from cnnexp.sweeps.summarize import finish_sweep

        sweep_dir = Path(str(config.hydra.sweep.dir))
        restore_record(sweep_dir, SettingsCheck.launch)
        launch = SettingsCheck.launch
        idle = launch is not None and ran_nothing(sweep_dir, SettingsCheck.before)  # a resume that only skipped
        try:
            with last_out(SettingsCheck.lock) as last:  # a search's summary: once, by its last worker to end
                if last:  # an idle resume prints it; it writes it only where it is missing
                    finish_sweep(sweep_dir, SettingsCheck.replicate_keys,
                                 write=not idle or not summary_path(sweep_dir).is_file())
                else:
                    print(f"\nsweep folder: {sweep_dir} — other workers still run this search; the last of them to "
                          f"end writes its summary (summary.csv, summary.png). Now: {command('summary', sweep_dir)}")
        finally:
            close_sweep(config, sweep_dir)
            SettingsCheck.release()
            if idle:
                forget_launch(sweep_dir, launch, SettingsCheck.before)

    @classmethod
    def stop(cls) -> bool:
        """The sweep was stopped (Ctrl-C, SIGTERM): the summary of what ran, written as at its end by
        the last worker out; False where other workers still run the search (the last of them
        writes it)."""
        from cnnexp.core.locks import last_out
        from cnnexp.sweeps.collect import collect
        from cnnexp.sweeps.summarize import write_summary

        from cnnexp.sweeps.relaunch import forget_launch, ran_nothing

        restore_record(cls.sweep_dir, cls.launch)
        launch, before = cls.launch, cls.before
        idle = launch is not None and ran_nothing(cls.sweep_dir, before)  # a resume stopped before any run began
        last = True
        try:
            with last_out(cls.lock) as last:
                if last and not idle and collect(cls.sweep_dir):
                    write_summary(cls.sweep_dir, cls.replicate_keys)
        except UserError as e:  # its files not written (a full disk), a record not readable: said, then the stop
            print(f"cnnexp: error: {e}", file=sys.stderr)
        finally:
            cls.release()
            if idle:  # the sweep folder as the resume found it: no .resume-<time>/ of a launch that ran nothing
                forget_launch(cls.sweep_dir, launch, before)
        return last

    @classmethod
    def record_unstarted(cls) -> None:
        """A grid's job stopped (Ctrl-C, SIGTERM) while Hydra was starting it — its folder made,
        nothing in it yet — is recorded `interrupted`, with its overrides as the grid names them.
        Only where this process launches the jobs itself, one at a time: every job folder without a
        record is then the one it was starting (a pool's or SLURM's jobs record their own stop)."""
        from cnnexp.records.folder import holds_run_record
        from cnnexp.search.options import is_search

        config, sweep = cls.config, cls.sweep_dir
        if config is None or sweep is None or not sweep.is_dir() or is_search(config.hydra.sweeper) \
                or "BasicLauncher" not in str(OmegaConf.select(config, "hydra.launcher._target_", default="")):
            return
        empty = [d for d in sweep.iterdir() if d.is_dir() and not d.is_symlink()
                 and not d.name.startswith((".", "_")) and not holds_run_record(d)]
        if not empty:
            return
        from cnnexp.config.compose import run_name
        from cnnexp.sweeps.naming import grid_jobs, name_exclusions

        exclude = name_exclusions(config)
        jobs = {run_name(job, exclude): job for job in grid_jobs(config)}
        for folder in empty:
            if folder.name in jobs:
                record_stopped_job(folder, jobs[folder.name])

    @classmethod
    def release(cls) -> None:
        """The sweep is over (or stopped): multirun.yaml as first written, the folder's lock gone."""
        if cls.sweep_dir is not None:
            restore_record(cls.sweep_dir, cls.launch)
        if cls.lock is not None:
            cls.lock.release()
            cls.lock = None

    @classmethod
    def abandon(cls) -> None:
        """A launch refused before it ran: no empty .resume-<time>/ left behind, no lock."""
        if cls.launch is not None:
            try:
                cls.launch.rmdir()  # only if empty
            except OSError:
                pass
            cls.launch = None
        cls.release()


def record_stopped_job(run_dir: Path, overrides: list) -> None:
    """A sweep's job stopped (Ctrl-C, SIGTERM) before it wrote its record — while Hydra made its
    folder, its settings were checked or torch imported: recorded `interrupted`, which it is; else
    the summary could only say that it never began. `untrained`: this record is all its folder
    holds (no config.yaml, no data read); a resume runs it from the start."""
    from cnnexp.core import stopping
    from cnnexp.records.folder import RunRecord, results_path

    run_dir = Path(run_dir)
    if not run_dir.is_dir() or run_dir.is_symlink() or results_path(run_dir).exists() \
            or results_path(run_dir).is_symlink():
        return
    RunRecord(run_dir, list(overrides)).finish(
        "interrupted", reason=f"interrupted{stopping.cause()} while its job was starting, before it trained; "
                              "a resume (-m resume=SWEEP) runs it from the start", untrained=True)


def restore_record(sweep_dir, launch) -> None:
    if sweep_dir is None:
        return
    from cnnexp.sweeps.relaunch import restore_first_record

    try:
        restore_first_record(Path(sweep_dir), launch)
    except OSError as e:
        logging.getLogger("cnnexp").error("multirun.yaml could not be restored: %s", e)


def claimable(config: DictConfig, kind: str) -> None:
    """A folder the user named (hydra.run.dir=…, hydra.sweep.dir=…) is claimed only if it holds no
    other run's or sweep's record: nothing trains into another record unless it resumes it. The
    default names claim a fresh folder themselves (cnnexp.config.compose)."""
    from cnnexp.core.errors import SettingsError

    key = f"hydra.{kind}.dir"
    raw = str(OmegaConf.to_container(config.hydra[kind], resolve=False)["dir"])
    launched_rank = any(int(os.environ.get(v, "0") or 0) > 0 for v in ("LOCAL_RANK", "NODE_RANK", "RANK"))
    if f"cnnexp.{kind}_dir" in raw or launched_rank:
        return  # a DDP rank that rank 0 launched into its own folder (hydra.run.dir=…), where its record is
    path = Path(str(OmegaConf.select(config, key))).expanduser()
    check_writable(str(path), key)  # first: a name too long, a file where a folder goes
    if kind == "sweep" and is_sweep(path):
        raise SettingsError(key, str(path), f"it holds a sweep already; continue it with -m resume={path}, "
                                            "or name a new folder for a new sweep")
    found = records_in(path)
    if found:
        raise SettingsError(key, str(path), f"it holds another run's record ({found[0]}); name a new folder, "
                                            f"or continue that run with resume={path}")


def _plain(config: DictConfig) -> dict:
    """The sweep's settings as values, for its provenance (its data, its determinism)."""
    try:
        return OmegaConf.to_container(user_config(config), resolve=True)
    except Exception:  # an interpolation only a job can resolve: the data's name is what the record needs
        return OmegaConf.to_container(user_config(config), resolve=False)


def _open_sweep(config: DictConfig) -> DictConfig | None:
    """The sweep's folder, checked and claimed (or, for `-m resume=SWEEP`, the recorded sweep
    relaunched into its own); its runs named and counted, its total estimated. Returns the
    resumed sweep's first record (None for a new sweep)."""
    from cnnexp.core.locks import FolderLock, WorkerLock
    from cnnexp.search.options import is_search
    from cnnexp.search.space import check_search
    from cnnexp.sweeps.eta import announce
    from cnnexp.sweeps.naming import count_jobs, drop_duplicate_values, name_runs_by_swept_keys
    from cnnexp.sweeps.relaunch import read_recorded_sweep, recorded_sweeper, resume_sweep, runs_state
    from cnnexp.tracking.loggers import open_sweep

    from cnnexp.run.slurm import check_launcher

    recorded = None
    check_launcher(config)  # before the sweep folder exists: job-script values SLURM takes, a cluster that answers
    if OmegaConf.select(config, "resume", default=None):
        folder = Path(str(config.resume)).expanduser()
        if folder.is_dir():  # held before anything is read: two resumes of one grid cannot interleave;
            # a search's resumes join it as workers, sharing its lock
            SettingsCheck.lock = (WorkerLock if recorded_sweeper(folder) == "optuna" else FolderLock)(folder)
            SettingsCheck.before = runs_state(folder)
        SettingsCheck.launch = resume_sweep(config)  # the recorded sweep, into its own folder
        recorded = read_recorded_sweep(Path(str(config.hydra.sweep.dir)))
    else:
        claimable(config, "sweep")
        check_writable(str(user_config(config).paths.output_dir))
    if is_search(config.hydra.sweeper):
        check_search(config)  # its options and space, before the sweep folder exists
    drop_duplicate_values(config)
    name_runs_by_swept_keys(config)
    os.environ[SWEEP_SIZE] = str(count_jobs(config))  # each job's header: [3/12]
    os.environ.pop(SWEEP_REFUSED, None)  # an earlier sweep's, in this process
    if not is_search(config.hydra.sweeper):  # a search rejects its impossible trials itself, for free
        from cnnexp.sweeps.refusals import refuse_before_launch

        none_can_work = refuse_before_launch(config, int(os.environ[SWEEP_SIZE]))
        if none_can_work:
            raise UserError(none_can_work)
    announce(config, int(os.environ[SWEEP_SIZE]))  # the estimated total; each header's ETA
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if SettingsCheck.lock is None:  # a grid sweep's folder: one process; a search's: its workers
        SettingsCheck.lock = (WorkerLock if is_search(config.hydra.sweeper) else FolderLock)(sweep_dir)
    if recorded is None:  # once per sweep, as it launches (each job records its own too)
        from cnnexp.run import provenance

        provenance.record(sweep_dir, _plain(config), [str(o) for o in config.hydra.overrides.task])
    open_sweep(config, sweep_dir)  # logger=mlflow: the parent run of the trials
    return recorded
