"""MLflow, for teams that track there: `logger=mlflow` or `logger=[tensorboard,mlflow]`.

One MLflow run per cnnexp run: the effective config as params, the per-epoch metrics, and at
the end the final record (its numbers as metrics, its status as a tag) with config.yaml,
shapes.txt, metrics.csv and results.json as artifacts. A sweep or search is a parent run (its
id in the sweep folder's mlflow_run.json), each trial a child with the summary figure and table
on the parent. The run id is recorded in results.json, so a resumed or requeued run continues
the same MLflow run (Lightning's logger would start a new one, Lightning#6205).

Where: `logger.mlflow.tracking_uri`, which is MLFLOW_TRACKING_URI when set, else a SQLite store
beside the runs (outputs/mlflow.db, artifacts in outputs/mlartifacts) — resolved once and
recorded in config.yaml, so a resume writes where the run began. Needs `pip install 'cnnexp[mlflow]'`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import numbers
import time
from pathlib import Path
from typing import Any, Dict, Optional

from cnnexp.core.errors import RunError, SettingsError
from cnnexp.core.files import write_atomic
from cnnexp.records.folder import AS_MEANT, RUN_FILES, SWEEP_FILES, write_results

log = logging.getLogger("cnnexp")

PARENT_FILE = "mlflow_run.json"  # in a sweep folder: the parent run of its trials


def mlflow_status(status: Optional[str]) -> str:
    """MLflow's end state for a record's status: ok, or pruned (a search stopped it on purpose),
    FINISHED; interrupted KILLED; anything else FAILED."""
    if status == "interrupted":
        return "KILLED"
    return "FINISHED" if status in AS_MEANT else "FAILED"


def _client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    logging.getLogger("alembic").setLevel(logging.WARNING)  # a new SQLite store's migrations, line by line
    return MlflowClient(tracking_uri)


def _experiment(client, name: str, tracking_uri: str, output_dir: str) -> str:
    """The experiment's id, created if new: a local store keeps its artifacts beside the runs."""
    found = client.get_experiment_by_name(name)
    if found is not None and found.lifecycle_stage != "deleted":
        return found.experiment_id
    location = (Path(output_dir).expanduser().resolve() / "mlartifacts").as_uri() if tracking_uri.startswith("sqlite:") else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # a parallel job created it first
        return client.get_experiment_by_name(name).experiment_id


# ------------------------------------------------------------------ one run
def check_tracking(settings) -> None:
    """MLflow missing, or a tracking server that does not answer, is bad input: one line before
    any folder exists (MLflow's own client would retry for minutes). Only training needs it."""
    cfg = settings.logger.mlflow
    if cfg is None:
        return
    if importlib.util.find_spec("mlflow") is None:
        raise SettingsError("logger", "mlflow", "MLflow is not installed: pip install 'cnnexp[mlflow]' (make setup installs it)")
    if not cfg.tracking_uri.startswith(("http://", "https://")):
        return
    import urllib.request

    try:
        urllib.request.urlopen(cfg.tracking_uri.rstrip("/") + "/health", timeout=10).read()
    except Exception as e:
        reason = getattr(e, "reason", None) or e
        raise RunError(f"MLflow at {cfg.tracking_uri} does not answer ({reason}); start the server, or unset "
                       "MLFLOW_TRACKING_URI to track in outputs/mlflow.db") from None


def open_run(settings, run_dir: Path, record, previous: Optional[Dict], config: dict) -> Optional[str]:
    """Start (or, on resume, reopen) this run's MLflow run; its id goes into results.json and
    the record's listeners close it with the true final status. None when MLflow is off."""
    cfg = settings.logger.mlflow
    if cfg is None or not record.write:  # off, or not rank 0
        return None
    from mlflow.exceptions import MlflowException

    try:
        return _open_run(cfg, settings, run_dir, record, previous, config)
    except (MlflowException, OSError) as e:  # a tracker that fails: one line, recorded as this run's failure
        raise RunError(f"MLflow at {cfg.tracking_uri} did not answer ({str(e).splitlines()[0][:200]}); "
                       "check MLFLOW_TRACKING_URI or logger.mlflow.tracking_uri") from None


def _open_run(cfg, settings, run_dir: Path, record, previous: Optional[Dict], config: dict) -> str:
    from mlflow.entities import Param, RunTag

    from cnnexp.tracking.hparams import flatten

    client = _client(cfg.tracking_uri)
    run_id = (previous or {}).get("mlflow_run_id")
    if run_id:
        client.update_run(run_id, status="RUNNING")
    else:
        tags = {"cnnexp.run_dir": str(run_dir), "cnnexp.overrides": " ".join(record.data.get("overrides", []))[:5000],
                **source_tags(run_dir)}
        parent = _parent_of(run_dir.parent, cfg.tracking_uri)
        if parent:
            tags["mlflow.parentRunId"] = parent
        run = client.create_run(_experiment(client, cfg.experiment, cfg.tracking_uri, settings.paths.output_dir),
                                run_name=run_dir.name, tags=tags)
        run_id = run.info.run_id
    logged = client.get_run(run_id).data.params
    flat = {k: str(v) for k, v in flatten(config).items()}
    new = [Param(k, v[:6000]) for k, v in flat.items() if k not in logged]
    changed = [RunTag(f"cnnexp.resumed.{k}", v[:5000]) for k, v in flat.items() if k in logged and logged[k] != v[:6000]]
    for i in range(0, len(new), 100):  # MLflow's batch limit; params never change, so a resume's new values are tags
        client.log_batch(run_id, params=new[i:i + 100])
    if changed:
        client.log_batch(run_id, tags=changed)
    record.data["mlflow_run_id"] = run_id
    if record.write and record.started:  # a resume's record is written once training starts, with this id
        write_results(record.run_dir, record.data)
    record.listeners.append(lambda data: close_run(cfg.tracking_uri, run_id, run_dir, data))
    return run_id


def source_tags(run_dir: Path) -> Dict[str, str]:
    """MLflow's own tags for where a run came from (mlflow.source.*), from its provenance.json;
    provenance.json and code.patch themselves go up with the run's files."""
    from cnnexp.records.provenance import read_provenance

    try:
        found = read_provenance(run_dir) or {}
    except RunError:
        return {}
    code = found.get("code") or {}
    tags = {"mlflow.source.type": "LOCAL", "mlflow.source.name": str(found.get("command", ""))[:5000],
            "mlflow.source.git.commit": code.get("commit"), "mlflow.source.git.branch": code.get("branch"),
            "cnnexp.git.dirty": str(code.get("dirty")) if "dirty" in code else None, "cnnexp.git.note": code.get("note")}
    return {k: v for k, v in tags.items() if v}


def close_run(tracking_uri: str, run_id: str, run_dir: Path, data: Dict[str, Any]) -> None:
    """The final record: its numbers as metrics, its status as a tag, the run's files as artifacts."""
    try:
        client = _client(tracking_uri)
        final = {f"final/{k}": float(v) for k, v in data.items()
                 if isinstance(v, numbers.Real) and not isinstance(v, bool)}
        from mlflow.entities import Metric, RunTag

        epoch, now = int(data.get("epochs") or 0), int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, now, epoch) for k, v in final.items()],
                         tags=[RunTag("cnnexp.status", str(data.get("status"))),
                               *([RunTag("cnnexp.reason", str(data["reason"])[:5000])] if data.get("reason") else [])])
        for name in RUN_FILES:
            if (run_dir / name).is_file():
                client.log_artifact(run_id, str(run_dir / name))
        client.set_terminated(run_id, mlflow_status(data.get("status")))
    except Exception as e:  # the tracker is a copy: the run folder already holds the record
        log.warning("MLflow: could not record the end of run %s (%s)", run_id, e)


def trainer_logger(settings, run_dir: Path):
    """Lightning's MLFlowLogger on this run's MLflow run (the id results.json holds), keeping
    the per-epoch metrics; None when MLflow is off."""
    cfg = settings.logger.mlflow
    if cfg is None:
        return None
    from lightning.pytorch.loggers import MLFlowLogger

    from cnnexp.records.folder import read_results

    class EpochMLFlowLogger(MLFlowLogger):
        def log_metrics(self, metrics, step=None):
            # per epoch, by epoch: a resume repeats the steps of the epoch it was killed in, not the epochs before
            epoch = metrics.get("epoch")
            kept = {k: v for k, v in metrics.items() if not k.endswith("_step") and k != "epoch"}
            if kept:
                super().log_metrics(kept, int(epoch) if epoch is not None else step)

        def log_hyperparams(self, params, metrics=None):
            pass  # the effective config was logged when the run opened; the final record when it closes

    run_id = (read_results(run_dir) or {}).get("mlflow_run_id")
    return EpochMLFlowLogger(experiment_name=cfg.experiment, tracking_uri=cfg.tracking_uri, run_id=run_id)


# ------------------------------------------------------------------ a sweep
def _parent_of(sweep_dir: Path, tracking_uri: str) -> Optional[str]:
    """The sweep's parent run, when the folder records one on the server this launch's own config
    names: a folder someone hands you never chooses the server it talks to."""
    try:
        recorded = json.loads((Path(sweep_dir) / PARENT_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict) or recorded.get("tracking_uri") != tracking_uri \
            or not isinstance(recorded.get("run_id"), str):
        return None
    return recorded["run_id"]


def open_sweep(config, sweep_dir: Path) -> None:
    """A sweep or search with MLflow on: its parent run, created once (a resumed sweep reopens it)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.select(config, "logger.mlflow", default=None)
    if cfg is None:
        return
    client = _client(cfg.tracking_uri)
    run_id = _parent_of(sweep_dir, cfg.tracking_uri)
    if run_id:
        client.update_run(run_id, status="RUNNING")
        return
    experiment = _experiment(client, cfg.experiment, cfg.tracking_uri, OmegaConf.select(config, "paths.output_dir"))
    run = client.create_run(experiment, run_name=f"sweep {sweep_dir.parent.name}/{sweep_dir.name}",
                            tags={"cnnexp.sweep_dir": str(sweep_dir)})
    write_atomic(sweep_dir / PARENT_FILE, json.dumps({"run_id": run.info.run_id, "tracking_uri": cfg.tracking_uri}) + "\n")


def close_sweep(config, sweep_dir: Path) -> None:
    """The sweep's summary figure and tables on its parent run, which then ends: only with MLflow on
    in this launch, on the server its config names."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.select(config, "logger.mlflow", default=None)
    run_id = None if cfg is None else _parent_of(sweep_dir, cfg.tracking_uri)
    if run_id is None:
        return
    try:
        client = _client(cfg.tracking_uri)
        for name in SWEEP_FILES:
            if (sweep_dir / name).is_file():
                client.log_artifact(run_id, str(sweep_dir / name))
        client.set_terminated(run_id, "FINISHED")
    except Exception as e:
        log.warning("MLflow: could not record the end of the sweep (%s)", e)
