"""A finished run brought back: its checkpoint opened safely (no pickled code runs) and the task
rebuilt exactly as it was trained, from the checkpoint's own config."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Optional, Tuple

from cnnexp.core.errors import RunError
from cnnexp.data.facts import FROM_MNIST
from cnnexp.records.folder import choose_checkpoint


def load_checkpoint(path: Path) -> dict:
    """torch.load with weights_only=True: a checkpoint cannot run code when it is opened."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, not a torch file at all
        raise RunError(unreadable(path, e)) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or \
            "run_config" not in checkpoint.get("hyper_parameters", {}):
        raise RunError(f"{path}: not a cnnexp checkpoint (no state_dict with its run config)")
    return checkpoint


def unreadable(path: Path, error: BaseException) -> str:
    """Why a checkpoint could not be opened, in our words. torch's refusal of what is not weights
    begins with advice to load it with `weights_only=False` — the one thing that would run the code
    it holds — so its text never reaches the user; what it refused is named instead."""
    if refused_as_unsafe(error):
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        what = f" ({found.group(1)})" if found else ""
        return (f"{path}: refused — it holds pickled code or objects{what} besides weights, which could run "
                "code on this machine when opened; cnnexp opens checkpoints with their weights only. Use a "
                "checkpoint a cnnexp run wrote, and never open this one without that guard")
    return f"{path}: {_what_is_wrong(error)}; put back a copy of it, or train the run again"


def _what_is_wrong(error: BaseException) -> str:
    """torch's own texts run to paragraphs of advice (some for files that are not ours): named here instead."""
    text = str(error).lower()
    if isinstance(error, EOFError) or any(w in text for w in ("zip", "miniz", "central directory")):
        return "not a whole checkpoint (cut short when it was written, or not a file torch wrote)"
    if isinstance(error, pickle.UnpicklingError):
        return "not a cnnexp checkpoint (not weights torch wrote)"
    if isinstance(error, OSError):
        return f"cannot be read ({error.strerror or type(error).__name__})"
    return f"not a readable cnnexp checkpoint ({type(error).__name__})"


def refused_as_unsafe(error: BaseException) -> bool:
    """torch's weights-only unpickler refused something in the file (not a cut-short or foreign file)."""
    return isinstance(error, pickle.UnpicklingError) and "weights only" in str(error).lower()


def rebuild_task(checkpoint: dict, path: Path, data_root: Optional[str] = None):
    """The task exactly as trained: network from the checkpoint's own config (checked once, as
    it is loaded), then its weights."""
    from cnnexp.config import settings as settings_module
    from cnnexp.config.own_network import NotConfirmed, reading_record

    reading_record(path.resolve().parent)  # a model=own run's class: imported on the user's word only
    if path.resolve().parent.name == "checkpoints":
        reading_record(path.resolve().parents[1])  # nor from beside it
    from cnnexp.core.errors import UserError
    from cnnexp.core.catalogue import task_class

    run_config = checkpoint["hyper_parameters"]["run_config"]
    if data_root:
        run_config = {**run_config, "data": {**run_config["data"], "root": data_root}}
    try:
        settings = settings_module.load(run_config)
    except NotConfirmed:
        raise
    except (UserError, KeyError, TypeError) as e:
        raise RunError(f"{path}: its config no longer builds a model ({e})") from None
    task = task_class(settings.model.task)(settings)
    try:
        task.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as e:
        raise RunError(f"{path}: weights do not fit the network in its config ({str(e).splitlines()[0]})") from None
    return task.eval()


def data_there(name: str, root, where: str, typed: bool) -> None:
    """A recorded data.root is read where it is, never downloaded into: a folder someone hands you
    does not choose where this machine writes MNIST. Typed again (data.root=…), it is the user's."""
    from cnnexp.data.idx import present

    if name not in FROM_MNIST or root is None or typed or present(str(root)):
        return
    raise RunError(f"{where} records data.root={root}, which holds no MNIST; a record is not followed to download "
                   "there — name the data yourself: data.root=… (e.g. data.root=data)")


def load_task(run: Optional[str], ckpt: Optional[str], data_root: Optional[str] = None) -> Tuple[object, Path]:
    path = choose_checkpoint(run, ckpt)
    return rebuild_task(load_checkpoint(path), path, data_root), path
