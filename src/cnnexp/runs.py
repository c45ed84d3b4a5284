"""A run folder as the unit users come back to: find its config and checkpoints, load them
safely, rebuild the exact task. Errors say what is wrong with which file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

from cnnexp.config import SettingsError


class RunError(ValueError):
    """A folder or checkpoint that cannot be used. str() is the message for the user."""


def run_folder(path: str, key: str = "run") -> Path:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise RunError(f"{key}={path}: no such folder")
    if not (folder / "config.yaml").is_file():
        raise RunError(f"{key}={path}: not a run folder (no config.yaml); pass a folder under outputs/, "
                       "e.g. outputs/2026-11-25/10-31-02")
    return folder


def choose_checkpoint(run: Optional[str], ckpt: Optional[str], which: str = "best", key: str = "run") -> Path:
    """ckpt= wins; else the run folder's checkpoints/best.ckpt (or last.ckpt)."""
    if ckpt:
        path = Path(ckpt).expanduser()
        if not path.is_file():
            raise RunError(f"ckpt={ckpt}: no such file")
        return path
    if not run:
        raise RunError("say which run: run=outputs/<date>/<time> (or ckpt=path/to/file.ckpt)")
    folder = run_folder(run, key)
    for name in ((which, "last") if which == "best" else (which,)):
        path = folder / "checkpoints" / f"{name}.ckpt"
        if path.is_file():
            return path
    raise RunError(f"{key}={run}: no checkpoints/{which}.ckpt in this run (did it finish an epoch?)")


def load_checkpoint(path: Path) -> dict:
    """torch.load with weights_only=True: a checkpoint cannot run code when it is opened."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, not a torch file at all
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise RunError(f"{path}: not a readable cnnexp checkpoint ({first})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or \
            "run_config" not in checkpoint.get("hyper_parameters", {}):
        raise RunError(f"{path}: not a cnnexp checkpoint (no state_dict with its run config)")
    return checkpoint


def rebuild_task(checkpoint: dict, path: Path, data_root: Optional[str] = None):
    """The task exactly as trained: network from the checkpoint's own config, then its weights."""
    from cnnexp.tasks import task_class

    run_config = checkpoint["hyper_parameters"]["run_config"]
    if data_root:
        run_config = {**run_config, "data": {**run_config["data"], "root": data_root}}
    try:
        task = task_class(run_config["model"]["task"])(run_config)
    except (SettingsError, KeyError) as e:
        raise RunError(f"{path}: its config no longer builds a model ({e})") from None
    try:
        task.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as e:
        raise RunError(f"{path}: weights do not fit the network in its config ({str(e).splitlines()[0]})") from None
    return task.eval()


def load_task(run: Optional[str], ckpt: Optional[str], data_root: Optional[str] = None) -> Tuple[object, Path]:
    path = choose_checkpoint(run, ckpt)
    return rebuild_task(load_checkpoint(path), path, data_root), path
