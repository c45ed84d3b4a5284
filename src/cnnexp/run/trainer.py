"""The Lightning trainer a run trains with: its arguments (the trainer settings, as checked), the
callbacks it carries, the run folder's loggers and checkpoints. Lightning is imported inside the
functions: the settings are checked before torch loads.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Callable, Dict

from cnnexp.config.own_network import as_typed
from cnnexp.config.settings import Settings
from cnnexp.core.errors import SettingsError
from cnnexp.records.folder import checkpoint_dir, checkpoint_path, metrics_path
from cnnexp.run import slurm


def trainer_arguments(settings: Settings) -> Dict[str, Any]:
    return dataclasses.asdict(settings.trainer)


_trainers_checked: set = set()  # trainer arguments Lightning accepted in this process


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


def build_trainer(settings: Settings, run_dir: Path, extra_callbacks=()):
    """lightning.Trainer with the run folder's loggers, checkpoints and per-epoch CSV; and the
    Timing callback, whose figures the run's record keeps."""
    import lightning as L

    from cnnexp.callbacks.checkpoint import InFolderCheckpointIO, RunCheckpoint
    from cnnexp.callbacks.early_stop import early_stopping
    from cnnexp.callbacks.epoch_csv import EpochCSV
    from cnnexp.callbacks.epoch_lr import EpochLR
    from cnnexp.callbacks.stop_guard import StopGuard
    from cnnexp.callbacks.timing import Timing

    ck = settings.callbacks.checkpoint
    timing = Timing()
    callbacks = [
        StopGuard(),                     # a Ctrl-C or SIGTERM that Python dropped still stops the run
        timing,                          # before EpochCSV: the row includes this epoch's timing
        EpochLR(),                       # … and its learning rate
        EpochCSV(metrics_path(run_dir)),
        RunCheckpoint(dirpath=checkpoint_dir(run_dir), filename=checkpoint_path(run_dir, "best").stem,
                      monitor=ck.monitor, mode=ck.mode,  # resolved once, in the settings check
                      save_top_k=1, save_last=ck.save_last, auto_insert_metric_name=False,
                      enable_version_counter=False),  # one best.ckpt, also after a moved run resumes
        *filter(None, [early_stopping(settings)]),  # callbacks.early_stopping.patience > 0: on the same monitor
        *extra_callbacks,
    ]
    if settings.callbacks.system_metrics.every_s and (settings.logger.tensorboard or settings.logger.mlflow
                                                      or settings.logger.wandb):
        from cnnexp.callbacks.system_metrics import SystemMetrics

        callbacks.append(SystemMetrics(settings.callbacks.system_metrics.every_s))
    if settings.lookahead.every:  # the slow weights are the ones validated, checkpointed and tested
        from cnnexp.callbacks.lookahead import Lookahead

        callbacks.insert(1, Lookahead(settings.lookahead.every, settings.lookahead.decay))
    shown = _progress(settings, run_dir, callbacks)
    kwargs = {**trainer_arguments(settings), "enable_progress_bar": shown != "none"}
    plugins = [InFolderCheckpointIO()]
    if slurm.in_job():  # requeueing is cnnexp's (cnnexp.run.slurm), from last.ckpt in the run folder
        from lightning.pytorch.plugins.environments import SLURMEnvironment

        plugins.append(SLURMEnvironment(auto_requeue=False))
    trainer = L.Trainer(**kwargs, callbacks=callbacks, logger=_loggers(settings, run_dir) or False,
                        default_root_dir=str(run_dir), enable_checkpointing=True, plugins=plugins)
    return trainer, timing


def _progress(settings: Settings, run_dir: Path, callbacks: list) -> str:
    """The progress the console shows — `bar`, `lines` or `none` — with its callback appended."""
    from lightning.pytorch.callbacks import TQDMProgressBar

    from cnnexp.callbacks.epoch_lines import TERMINAL_REFRESH, EpochLines, bar_or_lines

    shown = bar_or_lines(settings.callbacks.progress_bar_refresh) if settings.trainer.enable_progress_bar else "none"
    if shown == "bar":
        refresh = settings.callbacks.progress_bar_refresh
        callbacks.append(TQDMProgressBar(refresh_rate=TERMINAL_REFRESH if refresh == "auto" else refresh))
    elif shown == "lines":  # a log file or a pipe: no carriage returns, no cursor escapes
        callbacks.append(EpochLines(run_dir))
    return shown


def _loggers(settings: Settings, run_dir: Path) -> list:
    from cnnexp.tracking.board import Board, show_provenance
    from cnnexp.tracking.loggers import trainer_logger
    from cnnexp.tracking.wandb_run import trainer_logger as wandb_logger

    loggers = []
    if settings.logger.tensorboard:
        # name="", version="": event files land in the run folder itself, so TensorBoard names the
        # run by its folder; no −1 hp_metric: HParams are written at the end with real values.
        loggers.append(Board(save_dir=str(run_dir), name="", version="",  # cnnexp.tracking.board: tags, HParams
                             default_hp_metric=False, log_graph=settings.logger.log_graph))
        show_provenance(loggers[-1], run_dir)  # the text tab: commit, machine, data, the uncommitted change
    return loggers + list(filter(None, [trainer_logger(settings, run_dir),  # logger=mlflow
                                        wandb_logger(settings, run_dir, as_typed(dataclasses.asdict(settings)))]))  # logger=wandb


def began_callback(hook: Callable[[], None]):
    """A callback that calls hook() once training has started (after a resume's checkpoint is restored)."""
    import lightning as L

    class Began(L.Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            hook()

    return Began()
