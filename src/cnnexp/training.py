"""One training run: data → task → trainer → fit → test on the best checkpoint → results.

Called by `cnnexp.train` once the settings have passed their check; imports torch and
Lightning, which the check does not need.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Dict

from cnnexp.config import Settings
from cnnexp.console import quiet_lightning

log = logging.getLogger("cnnexp")


def build_trainer(settings: Settings, run_dir: Path, task, extra_callbacks=()):
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import TensorBoardLogger

    from cnnexp.callbacks.epoch_csv import EpochCSV
    from cnnexp.callbacks.throughput import Throughput

    ck = settings.callbacks.checkpoint
    monitor = task.monitor[0] if ck.monitor == "auto" else ck.monitor
    mode = task.monitor[1] if ck.mode == "auto" else ck.mode
    throughput = Throughput()
    callbacks = [
        throughput,                      # before EpochCSV: the row includes this epoch's timing
        EpochCSV(run_dir / "metrics.csv"),
        ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor=monitor, mode=mode,
                        save_top_k=1, save_last=ck.save_last, auto_insert_metric_name=False,
                        enable_version_counter=False),  # one best.ckpt, also after a moved run resumes
        *extra_callbacks,
    ]
    t = settings.trainer
    show_bar = t.enable_progress_bar and settings.callbacks.progress_bar_refresh > 0
    if show_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=settings.callbacks.progress_bar_refresh))
    loggers = []
    if settings.logger.tensorboard:
        # name="", version="": event files land in the run folder itself, so TensorBoard names the
        # run by its folder; no −1 hp_metric: HParams are written at the end with real values.
        loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="", version="",
                                         default_hp_metric=False, log_graph=settings.logger.log_graph))
    if loggers:
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    kwargs: Dict[str, Any] = {k: v for k, v in vars(t).items() if k != "enable_progress_bar"}
    trainer = L.Trainer(**kwargs, enable_progress_bar=show_bar, callbacks=callbacks,
                        logger=loggers or False, default_root_dir=str(run_dir), enable_checkpointing=True)
    return trainer, throughput


def fit_and_test(settings: Settings, run_dir: Path, run_config: dict, resume_from: Path | None = None) -> Dict[str, Any]:
    """Train, test the best checkpoint, and return the run's metrics."""
    import lightning as L

    quiet_lightning()

    from cnnexp.data.mnist import MNISTDataModule
    from cnnexp.tasks import task_class

    started = time.perf_counter()
    L.seed_everything(settings.seed, workers=True, verbose=False)
    datamodule = MNISTDataModule(settings.data, seed=settings.seed)
    from omegaconf import OmegaConf

    from cnnexp.callbacks.tensorboard_views import view_callbacks
    from cnnexp.models.table import format_table

    task = task_class(settings.model.task)(run_config)
    views = view_callbacks(settings, settings.model.task, OmegaConf.to_yaml(run_config), format_table(task.net.layers))
    trainer, throughput = build_trainer(settings, run_dir, task, views)
    trainer.fit(task, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)

    checkpoint = trainer.checkpoint_callback
    metric = checkpoint.monitor
    results: Dict[str, Any] = {
        "params": sum(p.numel() for p in task.parameters()),
        "epochs": trainer.current_epoch,
        "images_per_s": round(throughput.images_per_s, 1),
        "first_step_unix": throughput.first_step_unix,
        f"best_{metric.replace('/', '_')}": _float(checkpoint.best_model_score),
    }
    if settings.test_after_fit:
        ckpt = "best" if checkpoint.best_model_path else None
        tested = trainer.test(task, datamodule=datamodule, ckpt_path=ckpt, verbose=False, weights_only=True)[0]
        results.update({k.replace("/", "_"): round(float(v), 6) for k, v in tested.items()})
        results["tested_checkpoint"] = Path(checkpoint.best_model_path).name if ckpt else "final weights"
    results["wall_s"] = round(time.perf_counter() - started, 1)
    log_hparams(trainer, run_config, results)
    return results


HPARAM_METRICS = ("best_val_acc", "best_val_loss", "test_acc", "test_loss", "params", "images_per_s")


def flatten(tree: Any, prefix: str = "") -> Dict[str, Any]:
    """{"model": {"blocks": [{"kernel_size": 3}]}} → {"model.blocks.0.kernel_size": 3}: the keys a user
    types on the command line, with list items by index."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        return {prefix: tree if isinstance(tree, (int, float, str, bool)) else str(tree)}
    flat: Dict[str, Any] = {}
    for key, value in items:
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def flat_hparams(run_config: dict) -> Dict[str, Any]:
    """What distinguishes runs: model (blocks flattened), optimizer, schedule, batch size, seed."""
    chosen = {k: run_config[k] for k in ("model", "optimizer", "scheduler") if k in run_config}
    chosen["data"] = {"batch_size": run_config["data"]["batch_size"]}
    chosen["trainer"] = {k: run_config["trainer"][k] for k in ("max_epochs", "precision")}
    chosen["seed"] = run_config["seed"]
    return flatten(chosen)


def log_hparams(trainer, run_config: dict, results: Dict[str, Any]) -> None:
    """HParams once, with real metric values (TensorBoard's HParams tab and parallel coordinates)."""
    metrics = {f"hparams/{k}": float(results[k]) for k in HPARAM_METRICS if results.get(k) is not None}
    for logger in trainer.loggers:
        logger.log_hyperparams(flat_hparams(run_config), metrics=metrics)
        logger.finalize("success")


def _float(value) -> float | None:
    return None if value is None else round(float(value), 6)
