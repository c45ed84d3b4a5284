"""A run folder, the unit users come back to: claiming a new one, its results.json, finding
its config and checkpoints, loading them safely and rebuilding the exact task.

    outputs/<date>/<time>/  config.yaml  shapes.txt  metrics.csv  results.json  checkpoints/  events…
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from cnnexp.errors import RunError, SettingsError
from cnnexp.files import write_atomic

RESULTS = "results.json"


# ------------------------------------------------------------------ claiming a folder
def claim_fresh(path: str) -> str:
    """Claim `path` by creating it; if another run already did (same second), try path-2, -3 …"""
    base, n = Path(path), 1
    while True:
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return str(candidate)
        except FileExistsError:
            n += 1


def check_writable(output_dir: str, key: str = "paths.output_dir") -> None:
    """Probe the nearest existing folder on the way to output_dir with a real (removed) temp dir:
    permission bits say nothing for root, read-only mounts or /proc."""
    path = Path(output_dir).expanduser().absolute()
    if dollar_problem(path):  # said before the probe: the folder may well be writable
        raise SettingsError(key, output_dir, f"{dollar_problem(path)}; name a folder without one")
    long = next((part for part in path.parts if len(part.encode()) > 255), None)
    existing = None if long else next((p for p in (path.resolve(), *path.resolve().parents) if p.exists()), None)
    problem = None
    if long:  # the file system refuses it at mkdir, deep inside Hydra
        problem = f"the name {long[:40]}… is {len(long.encode())} bytes, more than the 255 a file system allows"
    elif existing is None or not existing.is_dir():
        problem = f"{existing} is not a folder"
    else:
        try:
            Path(tempfile.mkdtemp(prefix=".cnnexp-probe-", dir=existing)).rmdir()
        except OSError as e:
            problem = f"cannot create folders in {existing} ({e.strerror or e})"
    if problem:
        raise SettingsError(key, output_dir,
                            f"{problem}; pick a folder you can write to, e.g. {key}=$HOME/cnnexp-outputs")


def dollar_problem(path: Path) -> str:
    """Lightning's TensorBoard logger expands `$NAME` in its folder: a run folder with a `$` in its
    path would write its events elsewhere (`…/e$HOME` → `…/e/root`)."""
    return (f"its path holds a `$`, which Lightning's TensorBoard logger reads as an environment variable "
            f"(its events would land outside the run folder)") if "$" in str(path) else ""


# ------------------------------------------------------------------ results.json
def _finite(value: Any) -> Any:
    """NaN and ±inf become null: bare NaN is not JSON, and most readers reject it."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def write_results(run_dir: Path, data: Dict[str, Any]) -> None:
    write_atomic(Path(run_dir) / RESULTS, json.dumps(_finite(data), indent=2, allow_nan=False) + "\n")


def read_results(run_dir: Path) -> Optional[Dict[str, Any]]:
    try:
        return json.loads((Path(run_dir) / RESULTS).read_text())
    except (OSError, ValueError):
        return None


class RunRecord:
    """results.json: `running` from the start, then the true final status and the metrics.

    A resume starts its record only once training has started (`start`, docs/records.md): a
    resume that fails before leaves results.json as it was. `extends`: the finished record an
    extending resume continues; kept inside the new record, since from its first epoch on the
    checkpoints on disk are the extension's.
    """

    def __init__(self, run_dir: Path, overrides: list, write: bool = True, start: bool = True,
                 extends: Optional[Dict[str, Any]] = None, earlier_s: float = 0.0):
        self.run_dir = Path(run_dir)
        self.data: Dict[str, Any] = {"status": "running", "overrides": overrides,
                                     "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        self.t0 = time.perf_counter()
        self.earlier_s = earlier_s  # a resume's: the seconds its run's earlier launches recorded
        self.write, self.started = write, False
        if extends:  # in every record this one writes: also a resume that only tests again
            self.data["extends"] = extends
        self.listeners: list = []  # called with the final record (cnnexp.loggers: MLflow)
        if start:
            self.start()

    def start(self) -> None:
        if self.write:
            write_results(self.run_dir, self.data)
        self.started = True

    def finish(self, status: str, reason: str = "", **metrics: Any) -> Dict[str, Any]:
        # seconds: the run's, over every launch that recorded its own (a SIGKILLed one could not)
        self.data.update(status=status, seconds=round(self.earlier_s + time.perf_counter() - self.t0, 1), **metrics)
        if self.earlier_s:
            self.data["seconds_before_resume"] = self.earlier_s
        if reason:
            self.data["reason"] = reason
        if self.write and (self.started or status == "ok"):  # ok: re-tested what is on disk
            write_results(self.run_dir, self.data)
        for listener in self.listeners:
            listener(self.data)
        return self.data

    def refuse(self, reason: str, **facts: Any) -> Dict[str, Any]:
        """Settings refused before the run began (a sweep's job, a search's trial): `failed`, and
        `refused: true` says that this record is all its folder holds — no config.yaml, no data
        read, no checkpoint (`cnnexp.check` reads it)."""
        return self.finish("failed", reason=reason, refused=True, **facts)


# ------------------------------------------------------------------ finding and loading a run
def open_run(path: str, key: str = "run") -> Path:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise RunError(f"{key}={path}: no such folder")
    if not (folder / "config.yaml").is_file():
        runs = sorted(p.name for p in folder.iterdir() if (p / "config.yaml").is_file())
        if runs:  # a sweep (multirun) folder: name one of its runs, as this argument takes it
            raise RunError(f"{key}={path}: a sweep of {len(runs)} run{'s' * (len(runs) > 1)}, not a run; "
                           f"pass one of them, e.g. {key}={Path(path) / runs[0]}"
                           + (f" (or continue the whole sweep: python -m cnnexp.train -m resume={path})"
                              if key == "resume" else ""))
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
    folder = open_run(run, key)
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
    """The task exactly as trained: network from the checkpoint's own config (checked once, as
    it is loaded), then its weights."""
    from cnnexp import settings as settings_module
    from cnnexp.errors import UserError
    from cnnexp.tasks import task_class

    run_config = checkpoint["hyper_parameters"]["run_config"]
    if data_root:
        run_config = {**run_config, "data": {**run_config["data"], "root": data_root}}
    try:
        settings = settings_module.load(run_config)
    except (UserError, KeyError, TypeError) as e:
        raise RunError(f"{path}: its config no longer builds a model ({e})") from None
    task = task_class(settings.model.task)(settings)
    try:
        task.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as e:
        raise RunError(f"{path}: weights do not fit the network in its config ({str(e).splitlines()[0]})") from None
    return task.eval()


def load_task(run: Optional[str], ckpt: Optional[str], data_root: Optional[str] = None) -> Tuple[object, Path]:
    path = choose_checkpoint(run, ckpt)
    return rebuild_task(load_checkpoint(path), path, data_root), path
