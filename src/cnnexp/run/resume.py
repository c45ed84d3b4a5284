"""Continuing a run in its own folder: `python -m cnnexp.train resume=FOLDER [dotted overrides]`.

Everything is checked before the folder changes — the saved config with the overrides applied,
the last checkpoint, and that its weights fit the network the config builds — and the folder
is locked, so two resumes cannot interleave. Training then continues from checkpoints/last.ckpt
(written at every epoch end), in the same TensorBoard run, to the configured number of epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from omegaconf import OmegaConf

from cnnexp.core.errors import DataUnavailable, RunError, SettingsError, UserError
from cnnexp.core.locks import FolderLock, holder
from cnnexp.records.folder import (CONFIG, METRICS, RESULTS, RecordError, checkpoint_path, choose_checkpoint, config_path,
                                   dollar_problem, load_results, metrics_path, open_run, read_config, read_epochs,
                                   record_file, resumable)
from cnnexp.records.reading import refuse_links_out
from cnnexp.config.own_network import NotConfirmed
from cnnexp.run.restore import data_there, load_checkpoint
from cnnexp.config.settings import Settings, load
from cnnexp.core.console import command


def lock_folder(folder: Path) -> FolderLock:
    return FolderLock(folder)


@dataclass
class Resume:
    folder: Path
    settings: Settings
    checkpoint: Path     # checkpoints/last.ckpt
    lock: FolderLock | None
    epochs_done: int = 0  # what the estimate of the rest leaves out


def prepare(folder_arg: str, overrides: List[str]) -> Resume:
    """The run to continue, checked whole — every record it relies on (results.json, metrics.csv,
    config.yaml, both checkpoints) before anything is written; raises a UserError and changes
    nothing otherwise."""
    folder = open_run(folder_arg, key="resume").resolve()  # a wrong path is answered before torch loads
    dollar = dollar_problem(folder)
    if dollar:
        raise RunError(f"resume={folder_arg}: {dollar}; move the run to a folder without `$` "
                       "and resume it there (a moved run resumes from its own checkpoints)")

    from lightning.fabric.utilities.rank_zero import rank_zero_only

    lock = FolderLock(folder) if rank_zero_only.rank == 0 else None  # DDP's other ranks share rank 0's
    try:
        refuse_links_out(folder, "resume")  # train.log, events, hparams.yaml: nothing is written through a link
        from cnnexp.config.own_network import reading_record

        reading_record(folder)  # a model=own run's class: imported only when typed again (model._target_=…)
        saved = saved_config(folder, folder_arg)
        done = records_fit(folder, folder_arg)
        apply_overrides(saved, overrides)
        tracking_named(saved, folder, folder_arg, overrides)
        data_there(OmegaConf.select(saved, "data.name", default="mnist"), OmegaConf.select(saved, "data.root"),
                   f"resume={folder_arg}: its {CONFIG}", any(o.startswith("data.root=") for o in overrides))
        saved.resume = str(folder)
        settings = load(saved)
        checkpoint = choose_checkpoint(str(folder), None, which="last", key="resume")
        best = checkpoint_path(folder, "best")
        if record_file(folder, best) is not None:  # the test opens it after all the training: opened now
            load_checkpoint(best)
        weights_fit(settings, checkpoint, [o for o in overrides if not o.startswith("resume=")])
    except RecordError as e:
        if lock:
            lock.release()
        raise RunError(f"resume={folder_arg}: {e}; the run cannot be resumed as it is ("
                       f"{command('check', folder_arg)} lists what is wrong); put the record back, or start a new run") from None
    except BaseException:
        if lock:
            lock.release()
        raise
    return Resume(folder, settings, checkpoint, lock, done)


def records_fit(folder: Path, folder_arg: str) -> int:
    """results.json a run record (or absent), metrics.csv each epoch once from 0 (or absent): what
    the resume reads and appends to. Returns the epochs done."""
    results = load_results(folder) or {}
    epochs = read_epochs(folder) or []
    if epochs != list(range(len(epochs))):
        raise RecordError(f"{metrics_path(folder)}: epochs {epochs[:8]} are not each epoch once, in order from 0 "
                          f"(the resume appends to {METRICS})")
    recorded = results.get("epochs")
    if isinstance(recorded, int) and results.get("status") != "running" and len(epochs) < recorded:
        raise RecordError(f"{metrics_path(folder)}: {len(epochs)} epochs, but {RESULTS} says {recorded} were "
                          f"trained (rows lost; the resume would append after the gap)")
    return len(epochs)


def saved_config(folder: Path, folder_arg: str):
    """The run's config.yaml as it was recorded: values only, never resolved, and the settings of a
    run on their own (a file cut short names itself, not the first key it lacks)."""
    tree = read_config(folder)  # RecordError: missing, empty, not YAML, not a mapping, an interpolation
    try:
        load(tree)
    except NotConfirmed:
        raise  # its own line: how to confirm the class (config.own_network)
    except (DataUnavailable, SettingsError) as e:
        data = tree.get("data") if isinstance(tree.get("data"), dict) else {}
        recorded = data.get("root") not in (None, "", "???")  # a record cut before data.root is no data change
        if isinstance(e, SettingsError) and (e.key not in ("data.root", "data.classes") or not recorded):
            raise RecordError(f"{config_path(folder)}: does not hold a run's settings ({e}); cut short or edited "
                              "by hand") from None
        raise RunError(f"{folder_arg}: the data changed since this run trained ({e}); its record is whole — put "
                       "back the data it trained on, or start a new run on the new data") from None
    except UserError as e:
        raise RecordError(f"{config_path(folder)}: does not hold a run's settings ({e}); cut short or edited "
                          "by hand") from None
    return OmegaConf.create(tree)


def tracking_named(saved, folder: Path, folder_arg: str, overrides: List[str]) -> None:
    """A resume talks to the MLflow server the user names (MLFLOW_TRACKING_URI, or typed
    logger.mlflow.tracking_uri=…), or to the SQLite store beside the run that the default records
    (outputs/mlflow.db) — never to a server a folder someone hands you names."""
    import os

    uri = OmegaConf.select(saved, "logger.mlflow.tracking_uri", default=None)
    if uri is None or any(o.startswith("logger.mlflow.tracking_uri=") for o in overrides):
        return
    if uri == os.environ.get("MLFLOW_TRACKING_URI"):
        return
    beside = uri.startswith("sqlite:///") and Path(uri[len("sqlite:///"):]).name == "mlflow.db" and \
        Path(uri[len("sqlite:///"):]).resolve().parent in folder.resolve().parents
    if beside:
        return
    raise RunError(f"resume={folder_arg}: its {CONFIG} records logger.mlflow.tracking_uri={uri}, which a resume does "
                   "not connect to on a folder's word; if you trust it, name it: MLFLOW_TRACKING_URI=… or "
                   "logger.mlflow.tracking_uri=…")


def apply_overrides(saved, overrides: List[str]) -> None:
    """The resume's dotted overrides onto the saved config; groups and what "best" means stay."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if key == "resume":
            continue
        if "." not in key:
            raise RunError(f"{override.input_line}: a resumed run keeps its model, data and optimizer groups; "
                           "only dotted overrides (e.g. trainer.max_epochs=20) apply")
        if key in ("callbacks.checkpoint.monitor", "callbacks.checkpoint.mode") and \
                str(override.value()) not in ("auto", str(OmegaConf.select(saved, key))):
            raise RunError(f"{override.input_line}: a resumed run keeps what \"best\" meant for it "
                           f"({OmegaConf.select(saved, key)}): its best.ckpt was chosen by that; "
                           "start a new run to choose by another metric")
        try:
            OmegaConf.update(saved, key, override.value(), force_add=False)
        except Exception as e:
            raise RunError(f"{override.input_line}: cannot apply to the saved config ({str(e).splitlines()[0]})") from None


def weights_fit(settings: Settings, checkpoint: Path, overrides: List[str]) -> None:
    """The checkpoint opens, and its weights load into the network these settings build."""
    from cnnexp.core.catalogue import task_class

    state = load_checkpoint(checkpoint)  # truncated or foreign: RunError now, not mid-way through fit
    task = task_class(settings.model.task)(settings)
    try:
        task.load_state_dict(state["state_dict"])
    except RuntimeError as e:
        what = f" with {' '.join(overrides)}" if overrides else ""
        raise RunError(f"{checkpoint}: its weights do not fit the network{what} "
                       f"({str(e).splitlines()[1 if len(str(e).splitlines()) > 1 else 0].strip()[:160]}); "
                       "a resume can change training settings (epochs, lr), not the network") from None


def epochs_done(run_dir: Path) -> int:
    """Epochs the run has finished: metrics.csv gains its whole row as each epoch ends, with the
    last.ckpt a resume continues from (0 where it cannot be read)."""
    try:
        return 1 + max(read_epochs(run_dir) or [], default=-1)
    except (RecordError, OSError):
        return 0


def in_earlier_launch(results: Optional[dict], run_dir: Path) -> str:
    """What a resumed sweep does with a run an earlier launch of it left: `skip` one that ended ok,
    `continue` one killed or interrupted with a last.ckpt, else `run` it again from the start."""
    status = results.get("status") if isinstance(results, dict) else None
    if status == "ok":
        return "skip"
    if resumable(run_dir, status):
        return "continue"
    return "run"


def state(run_dir: Path, results: Optional[dict]) -> str:
    """The record's status, with `running` split into `running` (its lock held) and `dead`."""
    status = results.get("status", "?") if isinstance(results, dict) else "?"
    if status == "running" and holder(run_dir) is None:
        return "dead"
    return status
