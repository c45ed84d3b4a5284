"""One run, top to bottom: check → claim the folder → data, task, trainer → fit → test → record.

`python -m cnnexp.train` hands each composed config to `run`. Everything that can be known
before a folder is written is checked once, in `check` (the Hydra callback calls it before
Hydra creates the folder; the job then reuses its answer), and the checked settings are what
every later step receives. A resume is checked the same way: its saved config, overrides,
checkpoint and weights, before anything in the folder changes (`resume.py`).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import signal
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf

from cnnexp.run import resume as resuming
from cnnexp.run import slurm
from cnnexp.core import stopping
from cnnexp.config.compose import reference_model
from cnnexp.core.console import job_header, silence_closed_streams
from cnnexp.data.sources import ensure_mnist
from cnnexp.arithmetic.table import cost_warning
from cnnexp.core.errors import RunError, SettingsError, UserError, fail
from cnnexp.core.files import os_error_line, write_atomic
from cnnexp.tracking.hparams import log_hparams
from cnnexp.tracking.loggers import check_tracking, open_run as open_tracking_run, trainer_logger
from cnnexp.run.resources import memory_errors_explained, share_cores
from cnnexp.records.folder import RunRecord, check_writable, read_results
from cnnexp.config.settings import Settings, load

log = logging.getLogger("cnnexp")


# ------------------------------------------------------------------ 1. check, once per config
@dataclass
class Checked:
    settings: Settings
    resume: Optional[resuming.Resume] = None

    @property
    def config(self) -> dict:
        """The effective config, as config.yaml records it: per-block values as built."""
        return dataclasses.asdict(self.settings)


_checked: Dict[str, Checked] = {}


def check(cfg: DictConfig, overrides: List[str]) -> Checked:
    """Settings, shapes, the output folder (or, for a resume, the run it continues) and the data
    files, then what Lightning rejects. Pure Python until Lightning's check: a typo is answered
    before torch is imported. Memoised, so the Hydra callback's check is the job's."""
    key = OmegaConf.to_yaml(cfg) + repr(overrides)
    if key not in _checked:
        try:
            config = OmegaConf.to_container(cfg, resolve=True)
        except Exception as e:  # an interpolation that cannot resolve: name its key
            raise SettingsError(getattr(e, "full_key", None) or "?", getattr(e, "value", None) or "${…}",
                                str(e).splitlines()[0]) from None
        config.pop("hydra", None)
        settings = load(config)
        if settings.resume:
            found = resuming.prepare(settings.resume, overrides)
            checked = Checked(found.settings, found)
        else:
            check_writable(settings.paths.output_dir)
            checked = Checked(settings)
        if checked.settings.data.name == "mnist":
            ensure_mnist(checked.settings.data)  # verified (or fetched) before torch is imported and a folder exists
        check_trainer(checked.settings)
        check_tracking(checked.settings)
        _checked[key] = checked
    return _checked[key]


def check_trainer(settings: Settings) -> None:
    """What Lightning itself rejects (strategy, accelerator, devices): built once, thrown away,
    so that a bad value is one line before any folder is written."""
    kwargs = trainer_arguments(settings)
    if repr(kwargs) in _trainers_checked:  # a sweep's jobs mostly share them: built once
        return
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    import lightning as L

    from cnnexp.core.console import quiet_lightning

    quiet_lightning()
    quiet = logging.getLogger("lightning.pytorch")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # its device report is printed once, by the real trainer
    try:
        L.Trainer(**{**kwargs, "enable_progress_bar": False}, logger=False, enable_checkpointing=False)
    except (MisconfigurationException, ValueError, RuntimeError) as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        named = [k for k in ("strategy", "accelerator", "devices", "num_nodes", "precision", "plugins")
                 if k in message.lower()] or ["accelerator"]
        raise SettingsError(f"trainer.{named[0]}", kwargs.get(named[0]), f"Lightning says: {message}") from None
    finally:
        quiet.setLevel(level)
    _trainers_checked.add(repr(kwargs))


_trainers_checked: set = set()  # trainer arguments Lightning accepted in this process


def trainer_arguments(settings: Settings) -> Dict[str, Any]:
    return dataclasses.asdict(settings.trainer)


# ------------------------------------------------------------------ 2. the run
def run(cfg: DictConfig, run_dir: Path, overrides: List[str], multirun: bool) -> dict:
    """The job: train, test the best checkpoint, and record the true outcome in results.json.
    A sweep's run that failed or diverged inside a SLURM job fails that job too (cnnexp.slurm)."""
    if multirun and signal.getsignal(signal.SIGINT) is signal.default_int_handler \
            and threading.current_thread() is threading.main_thread():
        stopping.install((signal.SIGINT,))  # a pool's worker process (hydra/launcher=parallel): Ctrl-C lands safely
    data = _run(cfg, run_dir, overrides, multirun)
    if multirun and slurm.in_job() and data.get("status") in ("failed", "diverged"):
        slurm.fail_job_at_exit()
    return data


def _run(cfg: DictConfig, run_dir: Path, overrides: List[str], multirun: bool) -> dict:
    checked_with = overrides  # what the check applies; results.json keeps the job's own overrides
    earlier = read_results(run_dir) if multirun else None
    if earlier:  # a resumed sweep (`-m resume=SWEEP`): this run's folder is already there
        if resuming.in_earlier_launch(earlier, run_dir) == "skip":
            log.info("%s: ok in an earlier launch of this sweep; skipped", run_dir.name)
            return earlier
        if resuming.in_earlier_launch(earlier, run_dir) == "continue":
            log.info("%s: killed in an earlier launch; continuing from its last.ckpt", run_dir.name)
            cfg = OmegaConf.merge(cfg, {"resume": str(run_dir)})
            checked_with = []  # its config.yaml has them
    continuing = checked_with is not overrides
    try:
        checked = check(cfg, checked_with)
    except UserError as e:
        if not multirun:
            _drop_fresh_folder(run_dir)
            fail(e)
        log.error("%s: invalid settings: %s", job_header(run_dir, multirun), e)
        # a run continued from an earlier launch keeps its record: nothing of it has changed
        data = (earlier if continuing else RunRecord(run_dir, overrides).refuse(str(e)))
        fail_fast = OmegaConf.select(cfg, "sweep_options.fail_fast", default=False)
        if fail_fast is True:
            raise FailFast(run_dir)
        return data
    stopping.check()  # a stop that came while torch was imported (where it could not be raised): before any record
    settings = checked.settings
    if slurm.in_job():
        slurm.install_handlers()  # preemption and requeue: recorded, then continued by the restarted job

    from lightning.fabric.utilities.rank_zero import rank_zero_only

    rank_zero = rank_zero_only.rank == 0  # DDP: every rank runs this; rank 0 writes the files
    lock = None
    try:
        lock = resuming.lock_folder(run_dir) if rank_zero and not checked.resume else None
        return _recorded(checked, run_dir, overrides, multirun, rank_zero)
    except OSError as e:  # a read-only or full disk, a name too long: one line naming the path
        error = RunError(os_error_line(e, run_dir))
        if not multirun:
            fail(error)
        log.error("run failed: %s", error)
        return _failed_in_sweep(settings, run_dir, {"status": "failed", "reason": str(error)})
    finally:  # the lock file goes with the run (a killed run's stays, unheld: a dead run)
        for held in (lock, checked.resume and checked.resume.lock):
            if held:
                held.release()


def _recorded(checked: Checked, run_dir: Path, overrides: List[str], multirun: bool, rank_zero: bool) -> dict:
    """Train and test under a record that says at every moment what is on disk (docs/records.md)."""
    settings = checked.settings
    previous = read_results(run_dir) if checked.resume else None
    extends = previous if previous and previous.get("status") == "ok" else (previous or {}).get("extends")
    record = RunRecord(run_dir, overrides, write=rank_zero, start=not checked.resume, extends=extends,
                       earlier_s=float((previous or {}).get("seconds") or 0))
    table = _shape_table(settings)
    config_yaml = OmegaConf.to_yaml(OmegaConf.create(checked.config))
    if rank_zero and not checked.resume:
        write_atomic(run_dir / "config.yaml", config_yaml)
        write_atomic(run_dir / "shapes.txt", table + "\n")
    if rank_zero:
        # config.yaml and shapes.txt have both; a sweep's job shows its one-line header alone
        shown = [config_yaml, table] if settings.print_config else [] if multirun else [table]
        log.info("\n".join([job_header(run_dir, multirun, eta=True), *shown]))
        costly = cost_warning(settings.model, reference_model(settings.model))  # before a setting that takes many times the reference's time
        if costly:
            log.warning(costly)
        if not multirun:  # a sweep said its total before launching; its jobs' headers carry the ETA
            log.info(_cost_line(settings, checked.resume.epochs_done if checked.resume else 0))

    def began(config_yaml: str) -> None:
        """A resume's first write, once training has started: its config, its record."""
        if rank_zero:
            write_atomic(run_dir / "config.yaml", config_yaml)
            write_atomic(run_dir / "shapes.txt", table + "\n")
        record.start()

    try:
        open_tracking_run(settings, run_dir, record, previous, checked.config)  # logger=mlflow
        for attempt in range(settings.sweep_options.retries + 1):  # an error, not bad input, may pass
            try:
                results = fit_and_test(checked, run_dir, table, config_yaml, overrides,
                                       began=began if checked.resume else None)
                break
            except (Stopped, UserError, OSError):
                raise
            except Exception:
                if attempt == settings.sweep_options.retries:
                    raise
                log.error("attempt %d failed, retrying (sweep_options.retries=%d):\n%s", attempt + 1,
                          settings.sweep_options.retries, traceback.format_exc())
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
        _finish_if_possible(record, "failed", reason=str(error))
        if not multirun:
            fail(error)
        log.error("run failed: %s", error)
        return _failed_in_sweep(settings, run_dir, record.data)
    except Exception as e:
        _finish_if_possible(record, "failed", reason=f"{type(e).__name__}: {e}")
        log.error("run failed:\n%s", traceback.format_exc())  # also in the run folder's train.log
        if not multirun:
            raise
        return _failed_in_sweep(settings, run_dir, record.data)
    else:
        data = record.finish("ok", **results)
        done = f"{job_header(run_dir, multirun)}: " if multirun else ""
        where = "" if multirun else f" — run folder {run_dir}"
        if "test_acc" in data:
            log.info("%stest accuracy: %.2f %% (%s)%s", done, 100 * data["test_acc"], data["tested_checkpoint"], where)
        elif "test_loss" in data:
            log.info("%stest loss: %.4f (%s)%s", done, data["test_loss"], data["tested_checkpoint"], where)
        return data
    data = _finish_if_possible(record, stop.status, reason=stop.reason, **stop.results)
    log.warning("%s (run folder %s)", stop.reason, run_dir)
    if stop.status == "interrupted":  # the sweep stops too; cnnexp.train prints how to go on
        if slurm.in_job():
            slurm.after_interrupt()
        raise Interrupted(run_dir, stop.reason, record.started or not checked.resume)
    return data


def _finish_if_possible(record: RunRecord, status: str, reason: str = "", **metrics) -> dict:
    """The final record, unless the disk refuses it (full, read-only): the console then says why."""
    try:
        return record.finish(status, reason=reason, **metrics)
    except OSError as e:
        log.error("results.json could not be written: %s", os_error_line(e, record.run_dir))
        return record.data


def _failed_in_sweep(settings: Settings, run_dir: Path, data: dict) -> dict:
    """A sweep's run that failed: its record goes back to the sweep, unless it is to stop there."""
    if settings.sweep_options.fail_fast:
        raise FailFast(run_dir) from None
    return data


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


class Stopped(Exception):
    """Training ended early with a true status other than ok or failed."""

    def __init__(self, status: str, reason: str, **results: Any):
        self.status, self.reason, self.results = status, reason, results
        super().__init__(reason)


def fit_and_test(checked: Checked, run_dir: Path, table: str, config_yaml: str,
                 overrides: List[str] = (), began=None) -> Dict[str, Any]:
    """Data → task → trainer → fit → test on the best checkpoint → the run's metrics.
    began(config_yaml): called once training has started (a resume's first write)."""
    import lightning as L

    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from cnnexp.callbacks.report_to_study import trial_reporter
    from cnnexp.callbacks.views import view_callbacks
    from cnnexp.core.console import quiet_lightning
    from cnnexp.data import make_datamodule
    from cnnexp.core.catalogue import task_class
    from cnnexp.tasks.base import Diverged

    quiet_lightning()
    settings = checked.settings
    share_cores(settings)
    L.seed_everything(settings.seed, workers=True, verbose=False)
    datamodule = make_datamodule(settings)
    datamodule.setup("fit")  # before the task: a folder's normalisation is computed here, and recorded
    recorded, config_yaml = config_yaml, OmegaConf.to_yaml(OmegaConf.create(checked.config))
    if config_yaml != recorded and rank_zero_only.rank == 0 and began is None:
        write_atomic(run_dir / "config.yaml", config_yaml)
    task = task_class(settings.model.task)(settings)
    views = view_callbacks(settings.callbacks.views, settings.model.task, datamodule, settings.model.layers,
                           config_yaml, table)
    reporter = trial_reporter(run_dir)  # a search's trial: its pruner, whose decision reaches every DDP rank
    began_hook = [_Began(lambda: began(config_yaml))] if began else []
    trainer, timing = build_trainer(settings, run_dir, [*views, *filter(None, [reporter]), *began_hook])
    checkpoint = trainer.checkpoint_callback
    resume_from = checked.resume.checkpoint if checked.resume else None

    def best() -> Dict[str, Any]:
        """What "best" meant and where it was: the one record the summary, search and eval read."""
        value = _float(checkpoint.best_model_score)
        return {"monitor": checkpoint.monitor, "mode": checkpoint.mode, "best": value,
                "best_epoch": checkpoint.best_epoch, f"best_{checkpoint.monitor.replace('/', '_')}": value}

    def so_far(**extra) -> Dict[str, Any]:
        return {"epochs": trainer.current_epoch, "step": trainer.global_step, **best(),
                **{k.replace("/", "_"): _float(v) for k, v in trainer.callback_metrics.items()
                   if k.endswith("_epoch") or k.startswith("val/")}, **extra}

    try:
        with memory_errors_explained(settings):
            trainer.fit(task, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    except Diverged as d:
        raise Stopped("diverged", f"diverged: {d}", **so_far(diverged_step=d.step)) from None
    except (KeyboardInterrupt, SystemExit):
        if trainer.interrupted:  # Lightning turns Ctrl-C into SystemExit(1), SIGTERM into SIGTERMException
            raise Stopped("interrupted", f"interrupted in epoch {trainer.current_epoch}{stopping.cause()}", **so_far()) from None
        raise
    if trainer.interrupted:
        raise Stopped("interrupted", f"interrupted in epoch {trainer.current_epoch}{stopping.cause()}", **so_far())
    if reporter and reporter.pruned:  # no test: a pruned trial reports only what it trained
        results = so_far(train_s=_float(timing.train_s))
        log_hparams(trainer, checked.config, results, overrides, status="pruned")
        raise Stopped("pruned", reporter.pruned, **results)

    results: Dict[str, Any] = {
        "params": sum(p.numel() for p in task.parameters()),
        "epochs": trainer.current_epoch,
        "images_per_s": round(timing.images_per_s, 1),
        "first_step_unix": timing.first_step_unix,
        "train_s": _float(timing.train_s),
        **best(),
    }
    if settings.lookahead.every:  # which weights best.ckpt holds and the test saw (callbacks/lookahead.py)
        results["weights"] = "lookahead (slow)"
    if settings.test_after_fit:
        ckpt = "best" if checkpoint.best_model_path else None
        if ckpt:  # the console and train.log say what is tested (tests/test_faults.py waits for this line)
            log.info("testing best.ckpt (epoch %s, %s %s)", checkpoint.best_epoch, checkpoint.monitor, results["best"])
        try:
            tested = trainer.test(task, datamodule=datamodule, ckpt_path=ckpt, verbose=False, weights_only=True)[0]
        except (KeyboardInterrupt, SystemExit):
            if trainer.interrupted:
                raise Stopped("interrupted", "interrupted while testing the best checkpoint (training had ended; "
                              "a resume tests it again)", **so_far()) from None
            raise
        results.update({k.replace("/", "_"): _float(v) for k, v in tested.items()})
        results["tested_checkpoint"] = Path(checkpoint.best_model_path).name if ckpt else "final weights"
    results["timing"] = timing.split(trainer, datamodule)
    results["time_to"] = timing.time_to  # null where validation never got there
    log_hparams(trainer, checked.config, results, overrides)
    return results


def _Began(hook):
    """A callback that calls hook() once training has started (after a resume's checkpoint is restored)."""
    import lightning as L

    class Began(L.Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            hook()

    return Began()


def build_trainer(settings: Settings, run_dir: Path, extra_callbacks=()):
    """lightning.Trainer with the run folder's loggers, checkpoints and per-epoch CSV."""
    import lightning as L
    from lightning.pytorch.callbacks import TQDMProgressBar

    from cnnexp.tracking.board import Board
    from cnnexp.callbacks.checkpoint import InFolderCheckpointIO, RunCheckpoint
    from cnnexp.callbacks.epoch_csv import EpochCSV
    from cnnexp.callbacks.epoch_lines import TERMINAL_REFRESH, EpochLines, bar_or_lines
    from cnnexp.callbacks.epoch_lr import EpochLR
    from cnnexp.callbacks.timing import Timing
    from cnnexp.callbacks.stop_guard import StopGuard
    ck = settings.callbacks.checkpoint
    timing = Timing()
    callbacks = [
        StopGuard(),                     # a Ctrl-C or SIGTERM that Python dropped still stops the run
        timing,                          # before EpochCSV: the row includes this epoch's timing
        EpochLR(),                       # … and its learning rate
        EpochCSV(run_dir / "metrics.csv"),
        RunCheckpoint(dirpath=run_dir / "checkpoints", filename="best",
                      monitor=ck.monitor, mode=ck.mode,  # resolved once, in the settings check
                      save_top_k=1, save_last=ck.save_last, auto_insert_metric_name=False,
                      enable_version_counter=False),  # one best.ckpt, also after a moved run resumes
        *extra_callbacks,
    ]
    if settings.lookahead.every:  # the slow weights are the ones validated, checkpointed and tested
        from cnnexp.callbacks.lookahead import Lookahead

        callbacks.insert(1, Lookahead(settings.lookahead.every, settings.lookahead.decay))
    t = settings.trainer
    shown = bar_or_lines(settings.callbacks.progress_bar_refresh) if t.enable_progress_bar else "none"
    if shown == "bar":
        refresh = settings.callbacks.progress_bar_refresh
        callbacks.append(TQDMProgressBar(refresh_rate=TERMINAL_REFRESH if refresh == "auto" else refresh))
    elif shown == "lines":  # a log file or a pipe: no carriage returns, no cursor escapes
        callbacks.append(EpochLines(run_dir))
    loggers = []
    if settings.logger.tensorboard:
        # name="", version="": event files land in the run folder itself, so TensorBoard names the
        # run by its folder; no −1 hp_metric: HParams are written at the end with real values.
        loggers.append(Board(save_dir=str(run_dir), name="", version="",  # cnnexp.board: tags, HParams
                             default_hp_metric=False, log_graph=settings.logger.log_graph))
    loggers += filter(None, [trainer_logger(settings, run_dir)])  # logger=mlflow
    kwargs = {**trainer_arguments(settings), "enable_progress_bar": shown != "none"}
    plugins = [InFolderCheckpointIO()]
    if slurm.in_job():  # requeueing is cnnexp's (cnnexp.slurm), from last.ckpt in the run folder
        from lightning.pytorch.plugins.environments import SLURMEnvironment

        plugins.append(SLURMEnvironment(auto_requeue=False))
    trainer = L.Trainer(**kwargs, callbacks=callbacks, logger=loggers or False, default_root_dir=str(run_dir),
                        enable_checkpointing=True, plugins=plugins)
    return trainer, timing


def _float(value) -> float | None:
    return None if value is None else round(float(value), 6)


def _shape_table(settings: Settings) -> str:
    from cnnexp.arithmetic.table import format_table

    return format_table(settings.model.layers)


def _cost_line(settings: Settings, done: int = 0) -> str:
    """The run's estimated seconds (cnnexp.cost) for the epochs not `done` before a resume; the
    first run on a machine measures it first."""
    from cnnexp.cost import estimate as cost
    from cnnexp.cost.calibration import for_estimates

    return cost.line(settings, for_estimates(), read=False, done=done)


def _drop_fresh_folder(run_dir: Path) -> None:
    """A single new run rejected before it started leaves no folder (it holds only Hydra's log)."""
    if run_dir.is_dir() and not (run_dir / "config.yaml").exists() and not (run_dir / "results.json").exists():
        logging.shutdown()
        shutil.rmtree(run_dir, ignore_errors=True)
