"""One run, top to bottom: check → claim the folder → data, task, trainer → fit → test → record.

`python -m cnnexp.train` hands each composed config to `run`. Everything that can be known
before a folder is written is checked once (`preflight`: the Hydra callback calls it before
Hydra creates the folder; the job then reuses its answer), and the checked settings are what
every later step receives. A resume is checked the same way: its saved config, overrides,
checkpoint and weights, before anything in the folder changes (`resume`).

The rooms of one run, in the order it visits them: `preflight` (the check), `start` (results.json
says `running`; config.yaml, shapes.txt, the header), `fit` (data → task → `trainer` → fit →
test), `outcome` (the true final status in results.json, and what it raises to the launch).
"""

from __future__ import annotations

import logging
import signal
import threading
import traceback
from pathlib import Path
from typing import List

from omegaconf import DictConfig, OmegaConf

from cnnexp.core import stopping
from cnnexp.core.console import job_header, refused_before_launch, silence_closed_streams
from cnnexp.core.errors import RunError, UserError, fail
from cnnexp.core.files import os_error_line
from cnnexp.records.folder import RunRecord, read_results
from cnnexp.run import resume as resuming
from cnnexp.run import outcome, slurm
from cnnexp.run.fit import fit_and_test
from cnnexp.run.outcome import (FailFast, Stopped, drop_fresh_folder, ended_early, ended_ok, failed_in_sweep,
                                finish_if_possible)
from cnnexp.run.preflight import Checked, check_run
from cnnexp.run.start import Start, start_run
from cnnexp.tracking.loggers import open_run as open_tracking_run
from cnnexp.tracking.wandb_run import open_wandb

log = logging.getLogger("cnnexp")


def run(cfg: DictConfig, run_dir: Path, overrides: List[str], multirun: bool) -> dict:
    """The job: train, test the best checkpoint, and record the true outcome in results.json.
    A sweep's run that failed or diverged inside a SLURM job fails that job too (cnnexp.run.slurm)."""
    if multirun and signal.getsignal(signal.SIGINT) is signal.default_int_handler \
            and threading.current_thread() is threading.main_thread():
        stopping.install((signal.SIGINT,))  # a pool's worker process (hydra/launcher=parallel): Ctrl-C lands safely
    if not multirun:
        outcome.STARTING[:] = [run_dir]  # stopped before its record: cnnexp.train drops the folder
    resumed = Path(str(OmegaConf.select(cfg, "resume", default=None) or "")).expanduser() if not multirun else None
    before = read_results(resumed) if resumed and resumed.is_dir() else None
    try:
        data = _run(cfg, run_dir, overrides, multirun)
    finally:
        if before is not None and read_results(resumed) != before:
            _summary_now_stale(resumed)
    if multirun and slurm.in_job() and data.get("status") in ("failed", "diverged"):
        slurm.fail_job_at_exit()
    return data


def _run(cfg: DictConfig, run_dir: Path, overrides: List[str], multirun: bool) -> dict:
    """A resumed sweep's job first asks what an earlier launch left; then check, lock, train."""
    checked_with = overrides  # what the check applies; results.json keeps the job's own overrides
    earlier = read_results(run_dir) if multirun else None
    then = resuming.in_earlier_launch(earlier, run_dir) if earlier else "run"
    if then == "skip":  # a resumed sweep (`-m resume=SWEEP`): this run's folder is already there
        log.info("%s: ok in an earlier launch of this sweep; skipped", run_dir.name)
        return earlier
    if then == "continue":
        log.info("%s: killed in an earlier launch; continuing from its last.ckpt", run_dir.name)
        cfg = OmegaConf.merge(cfg, {"resume": str(run_dir)})
        checked_with = []  # its config.yaml has them
    try:
        checked = check_run(cfg, checked_with)
    except UserError as e:
        return _refused(e, cfg, run_dir, overrides, multirun, earlier if then == "continue" else None)
    stopping.raise_if_asked()  # a stop that came while torch was imported (where it could not be raised): before any record
    if slurm.in_job():
        slurm.install_handlers()  # preemption and requeue: recorded, then continued by the restarted job

    from lightning.fabric.utilities.rank_zero import rank_zero_only

    rank_zero = rank_zero_only.rank == 0  # DDP: every rank runs this; rank 0 writes the files
    lock = None
    try:
        lock = None if not rank_zero or checked.resume else \
            HELD.pop(held_key(run_dir), None) or resuming.lock_folder(run_dir)
        return _recorded(checked, run_dir, overrides, multirun, rank_zero)
    except OSError as e:  # a read-only or full disk, a name too long: one line naming the path
        error = RunError(os_error_line(e, run_dir))
        if not multirun:
            fail(error)
        log.error("run failed: %s", error)
        return failed_in_sweep(checked.settings, run_dir, {"status": "failed", "reason": str(error)})
    finally:  # the lock file goes with the run (a killed run's stays, unheld: a dead run)
        for held in (lock, checked.resume and checked.resume.lock):
            if held:
                held.release()


def _summary_now_stale(run: Path) -> None:
    """A run of a sweep, resumed on its own, changed its record: the sweep's summary is marked
    stale, and the user told how to rebuild it."""
    from cnnexp.core.console import command
    from cnnexp.records.folder import is_sweep, mark_summary_stale, summary_path

    sweep = run.absolute().parent
    if not is_sweep(sweep) or not summary_path(sweep).is_file():
        return
    try:
        mark_summary_stale(sweep, run.name)
    except OSError as e:  # a read-only sweep folder: the run is recorded; the note still says what to do
        log.warning("the sweep's summary could not be marked stale: %s", os_error_line(e, sweep))
    log.info("the sweep's summary no longer matches this run; rebuild it: %s", command("summary", sweep))


HELD: dict = {}  # a single run's folder, locked before Hydra writes into it (`hold_run_folder`)


def held_key(run_dir) -> str:
    """One spelling of a folder (`..` folded, links resolved): a lock taken as a/../b is b's."""
    return str(Path(run_dir).expanduser().resolve())


def hold_run_folder(config: DictConfig) -> None:
    """A single new run's folder, locked as soon as its settings passed — before Hydra writes its
    .hydra/ and train.log there — so that of two runs started at once into one hydra.run.dir the
    loser is refused in one line and the winner's folder is left untouched. The job takes the lock
    over (`_run`)."""
    import os

    from cnnexp.core.errors import SettingsError
    from cnnexp.records.folder import records_in

    if any(int(os.environ.get(v, "0") or 0) > 0 for v in ("LOCAL_RANK", "NODE_RANK", "RANK")):
        return  # a DDP rank that rank 0 launched: rank 0 holds the folder
    run_dir = Path(str(config.hydra.run.dir)).expanduser().absolute()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        lock = resuming.lock_folder(run_dir)
    except UserError as e:  # another process holds it: say so in the words of the setting that named it
        busy = str(e).split("; ")[0].split(": ", 1)[-1]
        raise SettingsError("hydra.run.dir", str(run_dir), f"{busy} (another run, started at the same time); "
                                                           "name another folder") from None
    found = records_in(run_dir)
    if found:  # a run that began and ended while this one was checked
        lock.release()
        raise SettingsError("hydra.run.dir", str(run_dir), f"it holds another run's record ({found[0]}); name a new "
                                                           f"folder, or continue that run with resume={run_dir}")
    HELD[held_key(run_dir)] = lock


def _refused(error: UserError, cfg: DictConfig, run_dir: Path, overrides: List[str], multirun: bool,
             kept: dict | None) -> dict:
    """Settings the check refused: a single run says so in one line and leaves no folder; a
    sweep's job records `failed` and the sweep goes on (unless fail_fast). `kept`: the record of
    a run continued from an earlier launch, which stays as it is — nothing of that run changed."""
    if not multirun:
        drop_fresh_folder(run_dir)
        fail(error)
    if refused_before_launch(Path(run_dir).name) is not None:  # said once, before the sweep launched
        log.info("%s: refused before launch (above); recorded", job_header(run_dir, multirun))
    else:
        log.error("%s: invalid settings: %s", job_header(run_dir, multirun), error)
    data = kept if kept is not None else RunRecord(run_dir, overrides).refuse(str(error))
    if OmegaConf.select(cfg, "sweep_options.fail_fast", default=False) is True:
        raise FailFast(run_dir)
    return data


def _recorded(checked: Checked, run_dir: Path, overrides: List[str], multirun: bool, rank_zero: bool) -> dict:
    """Train and test under a record that says at every moment what is on disk (docs/records.md)."""
    settings = checked.settings
    start = start_run(checked, run_dir, overrides, multirun, rank_zero)
    record = start.record
    try:
        open_tracking_run(settings, run_dir, record, start.previous, checked.config)  # logger=mlflow
        open_wandb(settings, record, start.previous)  # logger=wandb
        results = _fit_with_retries(checked, run_dir, start, overrides)
    except KeyboardInterrupt as k:  # a stop outside Lightning's loops (before fit, between fit and test)
        stop = Stopped("interrupted", f"interrupted ({k or 'Ctrl-C'}) outside training")
    except Stopped as caught:
        stop = caught
    except BrokenPipeError:  # a progress bar's write to a console whose reader went away (`| head`)
        silence_closed_streams()
        stopping.received = signal.SIGPIPE
        stop = Stopped("interrupted", f"interrupted{stopping.cause()}")
    except (UserError, OSError) as e:
        error = e if isinstance(e, UserError) else RunError(os_error_line(e, run_dir))
        finish_if_possible(record, "failed", reason=str(error))
        if not multirun:
            fail(error)
        log.error("run failed: %s", error)
        return failed_in_sweep(settings, run_dir, record.data)
    except Exception as e:
        finish_if_possible(record, "failed", reason=f"{type(e).__name__}: {e}")
        log.error("run failed:\n%s", traceback.format_exc())  # also in the run folder's train.log
        if not multirun:
            raise
        return failed_in_sweep(settings, run_dir, record.data)
    else:
        return ended_ok(record, results, run_dir, multirun)
    return ended_early(record, stop, run_dir, resumed=checked.resume is not None)


def _fit_with_retries(checked: Checked, run_dir: Path, start: Start, overrides: List[str]) -> dict:
    """fit_and_test, tried again after an error that is not bad input (sweep_options.retries)."""
    retries = checked.settings.sweep_options.retries
    for attempt in range(retries + 1):
        try:
            return fit_and_test(checked, run_dir, start.table, start.config_yaml, overrides,
                                began=start.began if checked.resume else None)
        except (Stopped, UserError, OSError):
            raise
        except Exception:
            if attempt == retries:
                raise
            log.error("attempt %d failed, retrying (sweep_options.retries=%d):\n%s", attempt + 1,
                      retries, traceback.format_exc())
