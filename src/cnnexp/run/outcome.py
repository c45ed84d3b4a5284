"""How a run ends, as its results.json says: ok, failed (with the reason), or stopped early —
interrupted, diverged, pruned — and what each ending raises to the launch above it.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, Dict

from cnnexp.config.settings import Settings
from cnnexp.core.console import job_header
from cnnexp.core.files import os_error_line
from cnnexp.records.folder import CONFIG, RunRecord, remove_stale_parts
from cnnexp.run import slurm
from cnnexp.core.console import command

log = logging.getLogger("cnnexp")


class Stopped(Exception):
    """Training ended early with a true status other than ok or failed."""

    def __init__(self, status: str, reason: str, **results: Any):
        self.status, self.reason, self.results = status, reason, results
        super().__init__(reason)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, recorded as `interrupted` in the run's results.json — or, for a resume
    stopped before training started, not recorded at all (`recorded`): the folder is as it was."""

    def __init__(self, run_dir: Path, reason: str, recorded: bool = True):
        self.run_dir, self.reason, self.recorded = run_dir, reason, recorded
        super().__init__(reason)


class FailFast(SystemExit):
    """sweep_options.fail_fast: the first failed run stops the sweep (a SystemExit passes through
    Hydra's launcher, which records an Exception and goes on)."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        super().__init__(1)


def ended_ok(record: RunRecord, results: Dict[str, Any], run_dir: Path, multirun: bool) -> dict:
    """The record says ok; the console, what the test measured."""
    data = record.finish("ok", **results)
    if record.write:
        remove_stale_parts(run_dir)  # a resume that only tested again: the leftovers of a killed write go too
    done = f"{job_header(run_dir, multirun)}: " if multirun else ""
    where = "" if multirun else f" — run folder {run_dir}"
    if "test_acc" in data:
        log.info("%stest accuracy: %.2f %% (%s)%s", done, 100 * data["test_acc"], data["tested_checkpoint"], where)
    elif "test_loss" in data:
        log.info("%stest loss: %.4f (%s)%s", done, data["test_loss"], data["tested_checkpoint"], where)
    return data


def ended_early(record: RunRecord, stop: Stopped, run_dir: Path, resumed: bool) -> dict:
    """Diverged or pruned: the record, returned to the sweep. Interrupted: the record, then
    Interrupted, which stops the sweep too (cnnexp.train prints how to go on)."""
    data = finish_if_possible(record, stop.status, reason=stop.reason, **stop.results)
    log.warning("%s (run folder %s)", stop.reason, run_dir)
    if stop.status == "interrupted":
        if slurm.in_job():
            slurm.after_interrupt()
        raise Interrupted(run_dir, stop.reason, record.started or not resumed)
    return data


def finish_if_possible(record: RunRecord, status: str, reason: str = "", **metrics) -> dict:
    """The final record, unless the disk refuses it (full, read-only): the console then says why."""
    try:
        return record.finish(status, reason=reason, **metrics)
    except OSError as e:
        log.error("results.json could not be written: %s", os_error_line(e, record.run_dir))
        return record.data


def failed_in_sweep(settings: Settings, run_dir: Path, data: dict) -> dict:
    """A sweep's run that failed: its record goes back to the sweep, unless it is to stop there."""
    if settings.sweep_options.fail_fast:
        raise FailFast(run_dir) from None
    return data


def what_resume_does(run_dir: Path) -> str:
    """Plainly, what a resume of a stopped run keeps and what it does again: last.ckpt holds the
    epochs finished (metrics.csv's rows); what was trained after the last of them is lost."""
    from cnnexp.run.resume import epochs_done

    done = epochs_done(run_dir)
    return (f"last.ckpt holds the {done} epoch{'s' * (done != 1)} finished; what was trained after "
            f"{'them' if done != 1 else 'it'} is lost and is trained again by: {command('train', f'resume={run_dir}')}")


HYDRA_ONLY = (".hydra", "train.log", ".cnnexp.lock")  # what Hydra and the lock put in a run folder before its record


def drop_fresh_folder(run_dir: Path) -> None:
    """A single new run rejected or stopped before it recorded anything leaves no folder: what Hydra
    wrote there (its .hydra/, train.log) goes, and the folder with it. Anything else in it — a
    folder the user named, holding files of theirs — is left as it was."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or run_dir.is_symlink() or any(p.name not in HYDRA_ONLY for p in run_dir.iterdir()):
        return
    logging.shutdown()
    for name in HYDRA_ONLY:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            path.unlink(missing_ok=True)
    try:
        run_dir.rmdir()
    except OSError:
        pass


STARTING: list = []  # the folder of the single run under way in this process (set by cnnexp.run.lifecycle)


def drop_unrecorded_run() -> None:
    """A single run stopped while it started, before any record: its fresh folder goes, so that
    "nothing was recorded" is true of the disk too (a resume's folder holds its config.yaml: kept)."""
    for folder in STARTING:
        if not (Path(folder) / CONFIG).exists():
            drop_fresh_folder(Path(folder))
    drop_unrecorded_resume()


def drop_unrecorded_resume() -> None:
    """A resume stopped before it recorded anything leaves its run folder as it found it: the
    .hydra/resume-<time>/ Hydra made for this launch (RESUME_LAUNCH, named as the run started) goes too."""
    import shutil

    launch = RESUME_LAUNCH.get("folder")
    if launch is not None and launch.name.startswith("resume-") and launch.parent.name == ".hydra" \
            and not launch.is_symlink():
        shutil.rmtree(launch, ignore_errors=True)


RESUME_LAUNCH: dict = {}  # "folder": this resume's .hydra/resume-<time>/, set before Hydra writes it
