"""Data → task → trainer → fit → test on the best checkpoint → the run's metrics, as results.json
records them. An early end (diverged, interrupted, pruned) is raised as `Stopped`, with what was
trained so far.
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
from pathlib import Path
from typing import Any, Dict, Optional

from omegaconf import OmegaConf

from cnnexp.arithmetic.geometry import total_macs
from cnnexp.config.own_network import is_own
from cnnexp.core import stopping
from cnnexp.core.errors import RunError
from cnnexp.core.files import write_atomic
from cnnexp.records.folder import best_key, config_path
from cnnexp.run.outcome import Stopped
from cnnexp.run.preflight import Checked
from cnnexp.run.restore import unreadable
from cnnexp.run.resources import memory_errors_explained, share_cores
from cnnexp.run.trainer import began_callback, build_trainer
from cnnexp.tracking.hparams import log_hparams

log = logging.getLogger("cnnexp")


def fit_and_test(checked: Checked, run_dir: Path, table: str, config_yaml: str,
                 overrides=(), began=None) -> Dict[str, Any]:
    """began(config_yaml): called once training has started (a resume's first write)."""
    import lightning as L

    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from cnnexp.callbacks.early_stop import stop_record
    from cnnexp.callbacks.report_to_study import trial_reporter
    from cnnexp.callbacks.views import view_callbacks
    from cnnexp.core.catalogue import task_class
    from cnnexp.core.console import quiet_lightning
    from cnnexp.data import make_datamodule

    quiet_lightning()
    settings = checked.settings
    share_cores(settings)
    L.seed_everything(settings.seed, workers=True, verbose=False)
    datamodule = make_datamodule(settings)
    datamodule.setup("fit")  # before the task: a folder's normalisation is computed here, and recorded
    recorded, config_yaml = config_yaml, OmegaConf.to_yaml(OmegaConf.create(checked.config))
    if config_yaml != recorded and rank_zero_only.rank == 0 and began is None:
        write_atomic(config_path(run_dir), config_yaml)
    task = task_class(settings.model.task)(settings)
    chosen = settings.callbacks.views
    if is_own(settings.model):  # filters, feature maps and the arithmetic read the built-in conv stack
        chosen = dataclasses.replace(chosen, filters=False, feature_maps=False, receptive_field=False, arithmetic=False)
    views = view_callbacks(chosen, settings.model.task, datamodule, settings.model.layers, config_yaml, table)
    reporter = trial_reporter(run_dir)  # a search's trial: its pruner, whose decision reaches every DDP rank
    began_hook = [began_callback(lambda: began(config_yaml))] if began else []
    trainer, timing = build_trainer(settings, run_dir, [*views, *filter(None, [reporter]), *began_hook])

    _fit(trainer, task, datamodule, settings, checked.resume.checkpoint if checked.resume else None)
    if reporter and reporter.pruned:  # no test: a pruned trial reports only what it trained
        results = _so_far(trainer, train_s=_float(timing.train_s))
        log_hparams(trainer, checked.config, results, overrides, status="pruned")
        raise Stopped("pruned", reporter.pruned, **results)
    results: Dict[str, Any] = {
        "params": sum(p.numel() for p in task.parameters()),
        "macs": total_macs(settings.model.layers),  # the shape plan's, per image: a search's cost, HParams' too
        "epochs": trainer.current_epoch,
        "images_per_s": round(timing.images_per_s, 1),
        "first_step_unix": timing.first_step_unix,
        "train_s": _float(timing.train_s),
        **_best(trainer.checkpoint_callback),
    }
    stopped = stop_record(trainer)
    if stopped:  # callbacks.early_stopping: on, and whether, when and why it stopped
        results["early_stopping"] = stopped
    if settings.lookahead.every:  # which weights best.ckpt holds and the test saw (callbacks/lookahead.py)
        results["weights"] = "lookahead (slow)"
    if settings.test_after_fit:
        results.update(_test(trainer, task, datamodule, results["best"]))
    results["timing"] = timing.split(trainer, datamodule)
    results["time_to"] = timing.time_to  # null where validation never got there
    log_hparams(trainer, checked.config, results, overrides)
    return results


def _fit(trainer, task, datamodule, settings, resume_from: Optional[Path]) -> None:
    """trainer.fit, from a resume's checkpoint; a divergence or a stop raised as Stopped."""
    from cnnexp.tasks.base import Diverged

    try:
        with memory_errors_explained(settings):
            trainer.fit(task, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    except Diverged as d:
        raise Stopped("diverged", f"diverged: {d}", **_so_far(trainer, diverged_step=d.step)) from None
    except pickle.UnpicklingError as e:  # Lightning's own weights-only load: said in our words
        raise RunError(unreadable(resume_from, e)) from None
    except (KeyboardInterrupt, SystemExit):
        if trainer.interrupted:  # Lightning turns Ctrl-C into SystemExit(1), SIGTERM into SIGTERMException
            raise Stopped("interrupted", f"interrupted in epoch {trainer.current_epoch}{stopping.cause()}",
                          **_so_far(trainer)) from None
        raise
    if trainer.interrupted:
        raise Stopped("interrupted", f"interrupted in epoch {trainer.current_epoch}{stopping.cause()}",
                      **_so_far(trainer))


def _test(trainer, task, datamodule, best: Optional[float]) -> Dict[str, Any]:
    """The test metrics of the best checkpoint (the final weights where none was saved)."""
    checkpoint = trainer.checkpoint_callback
    ckpt = "best" if checkpoint.best_model_path else None
    if ckpt:  # the console and train.log say what is tested (tests/test_faults.py waits for this line)
        log.info("testing best.ckpt (epoch %s, %s %s)", checkpoint.best_epoch, checkpoint.monitor, best)
    try:
        tested = trainer.test(task, datamodule=datamodule, ckpt_path=ckpt, verbose=False, weights_only=True)[0]
    except pickle.UnpicklingError as e:
        raise RunError(unreadable(Path(checkpoint.best_model_path), e)) from None
    except (KeyboardInterrupt, SystemExit):
        if trainer.interrupted:
            raise Stopped("interrupted", "interrupted while testing the best checkpoint (training had ended; "
                          "a resume tests it again)", **_so_far(trainer)) from None
        raise
    results = {k.replace("/", "_"): _float(v) for k, v in tested.items()}
    results["tested_checkpoint"] = Path(checkpoint.best_model_path).name if ckpt else "final weights"
    return results


def _best(checkpoint) -> Dict[str, Any]:
    """What "best" meant and where it was: the one record the summary, search and eval read."""
    value = _float(checkpoint.best_model_score)
    return {"monitor": checkpoint.monitor, "mode": checkpoint.mode, "best": value,
            "best_epoch": checkpoint.best_epoch, best_key(checkpoint.monitor): value}


def _so_far(trainer, **extra) -> Dict[str, Any]:
    """What a run stopped early had trained: its epochs, best value and last epoch's metrics."""
    return {"epochs": trainer.current_epoch, "step": trainer.global_step, **_best(trainer.checkpoint_callback),
            **{k.replace("/", "_"): _float(v) for k, v in trainer.callback_metrics.items()
               if k.endswith("_epoch") or k.startswith("val/")}, **extra}


def _float(value) -> float | None:
    return None if value is None else round(float(value), 6)
