"""Weights & Biases, for teams that track there: `logger=wandb` or `logger=[tensorboard,wandb]`.

Offline by default (`logger.wandb.mode`: WANDB_MODE when set, else offline): the W&B run's files go
into the run folder's wandb/, and `wandb sync RUN/wandb/offline-run-*` uploads them later. One W&B
run per cnnexp run, named by its folder and grouped by its sweep; the effective config as its
config, the per-epoch metrics, the system metrics, and at the end the final record in its summary
with the status. Its id is recorded in results.json (`wandb_run_id`), so a resumed or requeued run
continues the same W&B run, as MLflow's does here. Needs `pip install 'cnnexp[wandb]'`.
"""

from __future__ import annotations

import importlib.util
import logging
import numbers
import os
import uuid
from pathlib import Path
from typing import Any, Dict, Optional

from cnnexp.core.errors import RunError, SettingsError
from cnnexp.records.folder import AS_MEANT, is_sweep, read_results, write_results

log = logging.getLogger("cnnexp")

ID_KEY = "wandb_run_id"  # in results.json


def check_wandb(settings) -> None:
    """logger=wandb that cannot work on this machine is bad input: one line before any folder
    exists — for a run (run/preflight.py) and for each setting of a grid before it launches
    (sweeps/refusals.py). Not in the settings check itself: eval, check and compare read recorded
    configs with logger=wandb on machines that need no W&B."""
    cfg = settings.logger.wandb
    if cfg is None:
        return
    if importlib.util.find_spec("wandb") is None:
        raise SettingsError("logger", "wandb", "W&B is not installed: pip install 'cnnexp[wandb]'")
    if cfg.mode == "online" and not _has_key():  # W&B would fail in wandb.init, after the folder exists
        raise SettingsError("logger.wandb.mode", cfg.mode, "online needs a W&B API key (set WANDB_API_KEY, or "
                            "run `wandb login`); or logger.wandb.mode=offline, and `wandb sync` later")
    key = os.environ.get("WANDB_API_KEY")
    if cfg.mode == "online" and key is not None and len(key.strip().split("-")[-1]) < 40:  # W&B's own rule
        raise SettingsError("logger.wandb.mode", cfg.mode, "online, but WANDB_API_KEY is not a W&B API key (those "
                            "are 40 characters or more: wandb.ai/authorize); or logger.wandb.mode=offline")


def _has_key() -> bool:
    """An API key W&B would find: WANDB_API_KEY, an identity token, or `wandb login`'s netrc entry
    for its host. Files only, no network: the check never waits."""
    import netrc
    from urllib.parse import urlparse

    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or ""
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    if not path.is_file():  # not a pipe, which would hang the check
        return False
    try:
        return netrc.netrc(str(path)).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return True  # a netrc this cannot parse: W&B's own reader decides


def open_wandb(settings, record, previous: Optional[Dict]) -> Optional[str]:
    """This run's W&B id: the one an earlier launch recorded (a resume goes on in it), else a new
    one; recorded in results.json before training, closed with the true final status."""
    if settings.logger.wandb is None or not record.write:
        return None
    run_id = (previous or {}).get(ID_KEY) or uuid.uuid4().hex[:12]
    record.data[ID_KEY] = run_id
    if record.started:  # a resume's record is written once training starts, with this id
        write_results(record.run_dir, record.data)
    record.listeners.append(close_wandb)
    return run_id


def close_wandb(data: Dict[str, Any]) -> None:
    """The final record in the W&B run's summary, then the run ends (a sweep's next run is a new one)."""
    try:
        import wandb

        run = wandb.run
        if run is None:
            return
        run.summary.update({f"final/{k}": v for k, v in data.items()
                            if isinstance(v, numbers.Real) and not isinstance(v, bool)})
        run.summary["status"] = str(data.get("status"))
        if data.get("reason"):
            run.summary["reason"] = str(data["reason"])[:2000]
        wandb.finish(exit_code=0 if data.get("status") in AS_MEANT else 1)
    except Exception as e:  # the tracker is a copy: the run folder already holds the record
        log.warning("W&B: could not record the end of the run (%s)", e)


def trainer_logger(settings, run_dir: Path, config: Optional[dict] = None):
    """Lightning's WandbLogger on this run's W&B run (the id results.json holds); None when off."""
    cfg = settings.logger.wandb
    if cfg is None:
        return None
    from lightning.pytorch.loggers import WandbLogger

    from cnnexp.tracking.hparams import flatten

    class EpochWandbLogger(WandbLogger):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._wandb_init.pop("anonymous", None)  # Lightning always passes it; W&B warns that it is gone

        def log_hyperparams(self, params, metrics=None):
            if metrics:  # the run's numbers at the end: its summary (the config went in when it opened)
                self.experiment.summary.update(metrics)

        def finalize(self, status: str) -> None:
            pass  # the record's listener ends the W&B run, with the true status

    run_id = (read_results(run_dir) or {}).get(ID_KEY)
    os.environ.setdefault("WANDB_SILENT", "true")  # its banner is a dozen lines; where the files are is said once
    group = run_dir.parent.name if is_sweep(run_dir.parent) else None
    logger = EpochWandbLogger(name=run_dir.name, project=cfg.project, entity=cfg.entity, save_dir=str(run_dir),
                              id=run_id, resume="allow", mode=cfg.mode, group=group,
                              config=flatten(config) if config else None, log_model=False)
    if cfg.mode == "online":  # open it now: a refused key or no server is one line, not a traceback mid-fit
        try:
            logger.experiment
        except Exception as e:
            raise RunError(f"W&B could not open run {run_id} online ({type(e).__name__}: "
                           f"{(str(e).splitlines() or [''])[0][:200]}); check WANDB_API_KEY and the network, or "
                           "logger.wandb.mode=offline and `wandb sync` later") from None
    where = "offline, in " + str(run_dir / "wandb") if cfg.mode == "offline" else f"mode {cfg.mode}"
    log.info("W&B run %s (%s)", run_id, where)
    return logger
