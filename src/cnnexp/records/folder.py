"""A run folder, the unit users come back to, and a sweep folder around runs: the only module that
knows their file names, the statuses a record can hold, the checkpoint paths, what makes a folder
a run or a sweep, and when a run can be resumed. Everyone else asks here.

    outputs/<date>/<time>/  config.yaml  shapes.txt  metrics.csv  results.json  checkpoints/{best,last}.ckpt  events…
    outputs/multirun/<date>/<time>/  multirun.yaml  summary.csv  summary.png  <run>/ …
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from cnnexp.core.console import command
from cnnexp.core.errors import RunError, SettingsError
from cnnexp.core.files import write_atomic
from cnnexp.records.reading import RecordError, parse_json, plain_yaml, read_record_text, record_file
from cnnexp.records.values import RESUMABLE, STATUSES, STOPPED, record_problems  # noqa: F401 — asked of here too

# ------------------------------------------------------------------ the files
CONFIG = "config.yaml"          # the effective config, as the run was checked
SHAPES = "shapes.txt"           # the shape table it was built from
METRICS = "metrics.csv"         # one row per epoch
RESULTS = "results.json"        # status, reason, metrics: the run's record (RunRecord)
CHECKPOINTS = "checkpoints"     # best.ckpt (the monitored best) and last.ckpt (where a resume goes on)
SWEEP_CONFIG = "multirun.yaml"  # Hydra writes it at the root of every sweep; resume= and the summary read it
SUMMARY = "summary.csv"         # a sweep's table, one row per setting
SUMMARY_RUNS = "summary_runs.csv"  # … and one row per run
SUMMARY_PLOT = "summary.png"    # a sweep's metric against what it varies
PROVENANCE = "provenance.json"  # what produced it: command, git state, packages, machine, data (docs/reproduce.md)
CODE_PATCH = "code.patch"       # the uncommitted change of the code that ran (git diff HEAD + new files)
SUMMARY_STALE = ".summary-stale"  # a sweep's runs resumed one by one since its summary: their names, a line each
RUN_FILES = (CONFIG, SHAPES, METRICS, RESULTS, PROVENANCE, CODE_PATCH)  # a run's record, in the order MLflow receives it
SWEEP_FILES = (SUMMARY_PLOT, SUMMARY, SUMMARY_RUNS, SWEEP_CONFIG)  # a sweep's, likewise

def config_path(folder: Path) -> Path:
    return Path(folder) / CONFIG


def shapes_path(folder: Path) -> Path:
    return Path(folder) / SHAPES


def metrics_path(folder: Path) -> Path:
    return Path(folder) / METRICS


def results_path(folder: Path) -> Path:
    return Path(folder) / RESULTS


def provenance_path(folder: Path) -> Path:
    return Path(folder) / PROVENANCE


def code_patch_path(folder: Path) -> Path:
    return Path(folder) / CODE_PATCH


def checkpoint_dir(folder: Path) -> Path:
    return Path(folder) / CHECKPOINTS


def checkpoint_path(folder: Path, which: str = "best") -> Path:
    """checkpoints/best.ckpt or checkpoints/last.ckpt."""
    return checkpoint_dir(folder) / f"{which}.ckpt"


def sweep_config_path(folder: Path) -> Path:
    return Path(folder) / SWEEP_CONFIG


def summary_path(folder: Path) -> Path:
    return Path(folder) / SUMMARY


def is_run(folder: Path) -> bool:
    """A run folder: it holds the config a run was checked with."""
    return config_path(folder).is_file()


def is_sweep(folder: Path) -> bool:
    """A sweep (or search) folder: Hydra's multirun.yaml at its root."""
    return sweep_config_path(folder).is_file()


def holds_run_record(folder: Path) -> bool:
    """A folder a run has written its record in: results.json or config.yaml (a run refused
    before it began holds only results.json). A sweep's job that never started holds neither."""
    return any(os.path.lexists(p) for p in (results_path(folder), config_path(folder)))


def records_in(folder: Path) -> List[str]:
    """The record files (and checkpoint folder) a folder holds: empty for a folder no run or
    sweep has written to."""
    return [n for n in (RESULTS, CONFIG, SWEEP_CONFIG, CHECKPOINTS) if (Path(folder) / n).exists()]


def resumable(folder: Path, status: Optional[str]) -> bool:
    """A run that stopped before its end (or was killed) and left a last.ckpt to go on from."""
    return status in RESUMABLE and checkpoint_path(folder, "last").is_file()


def best_key(monitor: str) -> str:
    """results.json's key for the best value of the monitored metric: val/acc → best_val_acc."""
    return f"best_{monitor.replace('/', '_')}"


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


PROBE_BYTES = 64 * 1024  # what a run writes before its first check can fail it: Hydra's records, config.yaml …


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
        try:  # a folder and a small file: a full disk still makes folders, then Hydra's config.yaml fails
            probe = Path(tempfile.mkdtemp(prefix=".cnnexp-probe-", dir=existing))
            try:
                (probe / "probe").write_bytes(bytes(PROBE_BYTES))
            finally:
                (probe / "probe").unlink(missing_ok=True)
                probe.rmdir()
        except OSError as e:
            problem = f"cannot write in {existing} ({e.strerror or e})"
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


def mark_summary_stale(sweep_dir: Path, run_name: str) -> Path:
    """A run of this sweep was resumed on its own: the sweep's summary no longer says what its
    runs hold until `python -m cnnexp.summary SWEEP` rebuilds it (which clears the mark)."""
    names = stale_runs(sweep_dir)
    write_atomic(Path(sweep_dir) / SUMMARY_STALE, "".join(f"{n}\n" for n in dict.fromkeys([*names, run_name])))
    return Path(sweep_dir) / SUMMARY_STALE


def stale_runs(sweep_dir: Path) -> List[str]:
    """The runs resumed since the sweep's summary was written ([] when it is current)."""
    path = Path(sweep_dir) / SUMMARY_STALE
    if path.is_symlink() or not path.is_file():
        return []
    try:
        return [line for line in path.read_text(errors="replace").splitlines()[:1000] if line.strip()]
    except OSError:
        return []


def clear_summary_stale(sweep_dir: Path) -> None:
    path = Path(sweep_dir) / SUMMARY_STALE
    if path.is_file() and not path.is_symlink():
        path.unlink(missing_ok=True)


def write_results(run_dir: Path, data: Dict[str, Any]) -> None:
    write_atomic(results_path(run_dir), json.dumps(_finite(data), indent=2, allow_nan=False) + "\n")


def read_results(run_dir: Path) -> Optional[Dict[str, Any]]:
    """The record as a dict, or None where there is none a reader can use (absent, unreadable,
    odd: cnnexp.check and resume= say which, through `load_results`)."""
    try:
        return load_results(run_dir)
    except (RecordError, OSError):
        return None


def load_results(run_dir: Path) -> Optional[Dict[str, Any]]:
    """results.json checked: None where the folder has none; RecordError (one line) where it is not
    a plain file of the folder, not JSON, or not a run record (`record_problems`)."""
    path = results_path(run_dir)
    text = read_record_text(run_dir, path)
    if text is None:
        return None
    results = parse_json(path, text)
    problems = record_problems(results)
    if problems:
        raise RecordError(f"{path}: {problems[0]}")
    return results


def read_epochs(run_dir: Path) -> Optional[List[int]]:
    """metrics.csv's epochs, in file order (None where there is no metrics.csv); RecordError where
    a row has no whole-number epoch."""
    path = metrics_path(run_dir)
    text = read_record_text(run_dir, path)
    if text is None:
        return None
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        epochs = [int(r["epoch"]) for r in rows]
    except (ValueError, KeyError, TypeError, csv.Error) as e:
        raise RecordError(f"{path}: not a table of epochs ({type(e).__name__}: {str(e)[:80]})") from None
    return epochs


def read_config(folder: Path, path: Optional[Path] = None, values_only: bool = True) -> Dict[str, Any]:
    """A recorded config (config.yaml; `path`: another of the folder's, e.g. multirun.yaml, whose
    Hydra section holds Hydra's own interpolations: `values_only=False`) as plain values, never
    resolved: RecordError where it is missing, not a file of the folder, empty, not YAML, not a
    mapping, or holds an interpolation (resolving a record would run what it names)."""
    from omegaconf import OmegaConf

    path = Path(path) if path is not None else config_path(folder)
    text = read_record_text(folder, path)
    if text is None:
        raise RecordError(f"{path}: missing")
    if not text.strip():
        raise RecordError(f"{path}: empty (cut short when it was written, or emptied)")
    try:
        plain_yaml(text, path)
        tree = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
    except RecordError:
        raise
    except Exception as e:
        raise RecordError(f"{path}: not readable YAML ({(str(e).splitlines() or [type(e).__name__])[0][:100]})") from None
    if not isinstance(tree, dict):
        raise RecordError(f"{path}: not a mapping of settings (a YAML {type(tree).__name__})")
    found = interpolations(tree) if values_only else []
    if found:
        raise RecordError(f"{path}: holds an interpolation ({found[0][:80]}); a record holds values, not "
                          "expressions — write the value there instead")
    return tree


def interpolations(tree, prefix: str = "") -> List[str]:
    """`key=${…}` for every value of a plain (unresolved) config that is an interpolation."""
    if isinstance(tree, dict):
        return [f for k, v in tree.items() for f in interpolations(v, f"{prefix}{k}.")]
    if isinstance(tree, list):
        return [f for i, v in enumerate(tree) for f in interpolations(v, f"{prefix}{i}.")]
    return [f"{prefix[:-1]}={tree}"] if isinstance(tree, str) and "${" in tree else []


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
        self.listeners: list = []  # called with the final record (cnnexp.tracking.loggers: MLflow)
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
    if not is_run(folder):
        runs = sorted(p.name for p in folder.iterdir() if is_run(p))
        if runs:  # a sweep (multirun) folder: name one of its runs, as this argument takes it
            raise RunError(f"{key}={path}: a sweep of {len(runs)} run{'s' * (len(runs) > 1)}, not a run; "
                           f"pass one of them, e.g. {key}={Path(path) / runs[0]}"
                           + (f" (or continue the whole sweep: {command('train', '-m', f'resume={path}')})"
                              if key == "resume" else ""))
        raise RunError(f"{key}={path}: not a run folder (no config.yaml); pass a folder under outputs/, "
                       "e.g. outputs/2026-11-25/10-31-02")
    return folder


def choose_checkpoint(run: Optional[str], ckpt: Optional[str], which: str = "best", key: str = "run") -> Path:
    """ckpt= wins (a file the user named: it may be anywhere, but must be a plain file); else the
    run folder's checkpoints/best.ckpt (or last.ckpt), a plain file of that folder (`record_file`)."""
    if ckpt:
        path = Path(ckpt).expanduser()
        if not path.exists():
            raise RunError(f"ckpt={ckpt}: no such file")
        if not path.is_file():
            raise RunError(f"ckpt={ckpt}: " + ("a folder" if path.is_dir() else "not a plain file (a device or a "
                                                "pipe)") + ", not a checkpoint file")
        return path
    if not run:
        raise RunError("say which run: run=outputs/<date>/<time> (or ckpt=path/to/file.ckpt)")
    folder = open_run(run, key)
    for name in ((which, "last") if which == "best" else (which,)):
        path = record_file(folder, checkpoint_path(folder, name))
        if path is not None:
            return checkpoint_path(folder, name)
    raise RunError(f"{key}={run}: no checkpoints/{which}.ckpt in this run (did it finish an epoch?)")


def stale_parts(folder: Path) -> List[Path]:
    """The temporary files of writes a kill cut short (`write_atomic`'s `.NAME.….part`), in the run
    folder and its checkpoints/: the files they were to replace are whole."""
    return sorted(p for where in (Path(folder), checkpoint_dir(folder)) if where.is_dir() and not where.is_symlink()
                  for p in where.glob(".*.part") if p.is_file() and not p.is_symlink())


def remove_stale_parts(folder: Path) -> None:
    """Once the run is ours again (its lock held by a resume that trains): leftovers of killed writes go."""
    for part in stale_parts(folder):
        part.unlink(missing_ok=True)


# ------------------------------------------------------------------ a sweep's view of its runs
REJECTED = "rejected"  # shown for a search's setting its shape check refused: results.json says failed, rejected: true
REFUSED = "refused"    # shown for a grid's setting refused before it ran: results.json says failed, refused: true
AS_MEANT = ("ok", "pruned")  # a run that ended as its sweep meant (a pruner stops trials by design): both log HParams


def summary_runs_path(folder: Path) -> Path:
    return Path(folder) / SUMMARY_RUNS


def summary_plot_path(folder: Path) -> Path:
    return Path(folder) / SUMMARY_PLOT


def shown_status(record: Dict[str, Any]) -> str:
    """`rejected` for a search's setting that never trained (its shapes cannot work), `refused` for
    a grid's, apart from runs that failed; results.json keeps `failed` with `rejected: true` or
    `refused: true`."""
    return REJECTED if record.get("rejected") else REFUSED if record.get("refused") and \
        record.get("status") == "failed" else record.get("status", "?")


def went_wrong(record: Dict[str, Any]) -> bool:
    """Neither ended as its sweep meant nor rejected by a search's shape check: what fails a sweep."""
    return shown_status(record) not in (*AS_MEANT, REJECTED)


# ------------------------------------------------------------------ a resumed sweep's first record
FIRST_SWEEP_CONFIG = ".multirun.first.yaml"  # multirun.yaml as the first launch wrote it, kept aside by the first resume


def first_sweep_config_path(folder: Path) -> Path:
    return Path(folder) / FIRST_SWEEP_CONFIG
