"""`python -m cnnexp.check FOLDER`: does a run or sweep folder keep its promises (docs/records.md)?

    python -m cnnexp.check outputs/2026-11-25/10-31-02            # a run
    python -m cnnexp.check outputs/multirun/2026-11-25/10-31-02   # a sweep, and each of its runs

One line per finding, exit 1; none: one line saying so, exit 0. A `running` record is told
apart by its lock (`.cnnexp.lock`): held, the run is alive; not held, it was killed (dead) and
`resume=` continues it — a fact about the run, not a broken record. A sweep folder's lock
likewise, whether one process holds it or a search's workers share it. Imports no torch.
"""

from __future__ import annotations

import csv
import json
import sys
import zipfile
from pathlib import Path
from typing import List, Tuple

from cnnexp.core.errors import fail
from cnnexp.records.folder import (CHECKPOINTS, CONFIG, METRICS, RESULTS, STATUSES, STOPPED, SWEEP_CONFIG,
                                   checkpoint_dir, config_path, holds_run_record, is_sweep, metrics_path,
                                   results_path, resumable, sweep_config_path)
from cnnexp.run.resume import state

USAGE = ("usage: python -m cnnexp.check FOLDER — a run folder (outputs/<date>/<time>) or a sweep folder "
         "(outputs/multirun/<date>/<time>); prints one line per broken promise of docs/records.md, exit 1 if any")


def run_findings(run_dir: Path, search_running: bool = False) -> Tuple[List[str], List[str]]:
    """(findings, notes) for one run folder; `search_running`: it is a trial of a search whose
    workers are alive, which run a killed trial again themselves."""
    where = str(run_dir)
    try:
        results = json.loads(results_path(run_dir).read_text())
    except FileNotFoundError:
        return [f"{where}: no {RESULTS} (a run writes it when it starts)"], []
    except (OSError, ValueError) as e:
        return [f"{where}/{RESULTS}: not readable JSON ({str(e).splitlines()[0][:120]})"], []
    # in the tuple of statuses: a status read as a list or a dict is none of them (no TypeError)
    if not isinstance(results, dict) or results.get("status") not in tuple(STATUSES):
        return [f"{where}/{RESULTS}: not a run record (status must be one of {', '.join(STATUSES)})"], []
    status = state(run_dir, results)
    notes = _liveness_notes(run_dir, results, status, search_running)
    findings: List[str] = []
    if status in STOPPED and not results.get("reason"):
        findings.append(f"{where}/{RESULTS}: status {status} without a reason")
    findings += _checkpoint_findings(run_dir, results, status)
    if status != "running":
        leftovers = [p for p in run_dir.rglob(".*.part")]
        if leftovers:
            notes.append(f"{where}: {len(leftovers)} unfinished temporary file(s) (e.g. {leftovers[0].name}) "
                         "from a killed write; the files they were to replace are whole")
    findings += _epoch_findings(run_dir, results, status)
    refused, trained = _refused(run_dir, results, status)
    if refused and trained:
        findings.append(f"{where}/{RESULTS}: says its settings were refused before it ran, "
                        f"but it holds {trained[0]}")
    findings += _config_findings(run_dir, not refused)
    return findings, notes


def _liveness_notes(run_dir: Path, results: dict, status: str, search_running: bool) -> List[str]:
    """A `running` record: alive (its lock held) or dead, and how a dead one goes on."""
    where = str(run_dir)
    if status == "dead" and search_running:
        return [f"{where}: dead — killed with its worker; the search's running workers run it again from its "
                "last.ckpt once its heartbeat has been silent for hydra.sweeper.grace_s"]
    if status == "dead":
        return [f"{where}: dead — {RESULTS} says running but no process holds its lock (killed); "
                + (f"continue with: python -m cnnexp.train resume={run_dir}" if resumable(run_dir, results["status"])
                   else "it was killed before its first checkpoint was whole: no last.ckpt to continue from, "
                        "run it again")]
    if status == "running":
        return [f"{where}: running (a live process holds its lock)"]
    return []


def _checkpoint_findings(run_dir: Path, results: dict, status: str) -> List[str]:
    """The checkpoint the record says it tested is there, and every checkpoint is whole."""
    findings = []
    checkpoints = checkpoint_dir(run_dir)
    tested = results.get("tested_checkpoint")
    if status == "ok" and tested and tested != "final weights" and not (checkpoints / tested).is_file():
        findings.append(f"{run_dir}/{RESULTS}: names {tested}, which is not in {CHECKPOINTS}/")
    for ckpt in sorted(checkpoints.glob("*.ckpt")) if checkpoints.is_dir() else []:
        if not zipfile.is_zipfile(ckpt):
            findings.append(f"{ckpt}: not a whole checkpoint (not a readable zip)")
    return findings


def _refused(run_dir: Path, results: dict, status: str) -> Tuple[bool, List[str]]:
    """Whether the record says its settings were refused before the run began (a sweep's shape
    error, a search's rejected trial) — then it is all the folder holds — and what the folder
    holds of a training all the same. `rejected`: a search's, and a record with neither mark
    nor config a grid's, both written before `refused` existed."""
    trained = [n for n in (CHECKPOINTS, METRICS) if (run_dir / n).exists()]
    marked = bool(results.get("refused") or results.get("rejected"))
    unmarked = "refused" not in results and not trained and not config_path(run_dir).exists()
    return status == "failed" and (marked or unmarked), trained


def _epoch_findings(run_dir: Path, results: dict, status: str) -> List[str]:
    """metrics.csv holds each epoch once, in order from 0, and no more than the record says."""
    path = metrics_path(run_dir)
    if not path.is_file():
        return []
    try:
        epochs = [int(r["epoch"]) for r in csv.DictReader(path.open(newline=""))]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return [f"{path}: not readable ({e})"]
    if epochs != list(range(len(epochs))):
        return [f"{path}: epochs {epochs[:12]} are not each epoch once, in order from 0"]
    recorded = results.get("epochs")
    if isinstance(recorded, int) and status not in ("running", "dead"):
        allowed = recorded if status == "ok" else recorded + 1  # a stop may fall after its epoch's row
        if len(epochs) > allowed:
            return [f"{path}: {len(epochs)} epochs, but {RESULTS} ({status}) says {recorded}"]
    return []


def _config_findings(run_dir: Path, required: bool) -> List[str]:
    """config.yaml is there (unless the run was refused), readable, and holds values only."""
    from omegaconf import OmegaConf

    from cnnexp.run.resume import interpolations

    path = config_path(run_dir)
    if not path.is_file():
        return [f"{run_dir}: no {CONFIG}"] if required else []
    try:
        found = interpolations(OmegaConf.to_container(OmegaConf.load(path), resolve=False))
    except Exception as e:
        return [f"{path}: not readable YAML ({str(e).splitlines()[0][:120]})"]
    return [f"{path}: holds an interpolation ({found[0]}); a record holds values"] if found else []


def sweep_findings(folder: Path) -> Tuple[List[str], List[str]]:
    """(findings, notes) for a sweep folder: its records of the launch, then each of its runs."""
    from omegaconf import OmegaConf

    from cnnexp.core.locks import holder
    from cnnexp.records.folder import FIRST_SWEEP_CONFIG
    from cnnexp.search.study import study_problem
    from cnnexp.sweeps.relaunch import recorded_sweeper

    findings: List[str] = []
    notes: List[str] = []
    first = folder / FIRST_SWEEP_CONFIG
    broken = {}  # each record of the launch that does not parse: each is its own finding
    for path in (sweep_config_path(folder), *([first] if first.is_file() else [])):
        try:
            OmegaConf.load(path)
        except Exception as e:
            broken[path] = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
    for path, why in broken.items():
        findings.append(f"{path}: not readable YAML ({why})")
    findings += filter(None, [study_problem(folder)])  # read-only; a database the folder names is not connected to
    sweep_alive = holder(folder) is not None  # a search's workers share the lock: held by any of them
    search = recorded_sweeper(folder) == "optuna"
    if sweep_alive:
        notes.append(f"{folder}: " + ("a search is running in it (its workers hold its lock)" if search else
                                      "a sweep is running in it (a live process holds its lock)"))
    elif first.is_file() and first not in broken and first.read_bytes() != sweep_config_path(folder).read_bytes():
        findings.append(f"{folder}/{SWEEP_CONFIG}: differs from the first launch's ({FIRST_SWEEP_CONFIG}); "
                        f"the next python -m cnnexp.train -m resume={folder} puts it back")
    for run_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not holds_run_record(run_dir):
            continue  # a job that never started: Hydra's folder, no record to check
        f, n = run_findings(run_dir, search_running=sweep_alive and search)
        findings += f
        notes += n
    return findings, notes


def folder_findings(folder: Path) -> Tuple[List[str], List[str]]:
    """(findings, notes) for a sweep folder or a run folder, whichever `folder` is."""
    return sweep_findings(folder) if is_sweep(folder) else run_findings(folder)


def main(argv: List[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    from cnnexp.config.args import exit_on_help

    exit_on_help(f"{USAGE}\n\n{__doc__}", args)
    if len(args) != 1:
        fail(USAGE)
    folder = Path(args[0]).expanduser()
    if not folder.is_dir():
        fail(f"{args[0]}: no such folder")
    if not sweep_config_path(folder).exists() and not holds_run_record(folder):
        fail(f"{args[0]}: neither a run folder ({RESULTS}, {CONFIG}) nor a sweep folder ({SWEEP_CONFIG})")
    findings, notes = folder_findings(folder)
    for line in notes + findings:
        print(line)
    if findings:
        raise SystemExit(1)
    print(f"{folder}: ok — its records keep the promises of docs/records.md")


if __name__ == "__main__":
    from cnnexp.core.console import report_like_cat

    report_like_cat()
    main()
