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
from cnnexp.run.resume import state

STATUSES = ("ok", "failed", "interrupted", "pruned", "diverged", "running")
USAGE = ("usage: python -m cnnexp.check FOLDER — a run folder (outputs/<date>/<time>) or a sweep folder "
         "(outputs/multirun/<date>/<time>); prints one line per broken promise of docs/records.md, exit 1 if any")


def check_run(run_dir: Path, search_running: bool = False) -> Tuple[List[str], List[str]]:
    """(findings, notes) for one run folder; `search_running`: it is a trial of a search whose
    workers are alive, which run a killed trial again themselves."""
    findings: List[str] = []
    notes: List[str] = []
    where = str(run_dir)
    try:
        results = json.loads((run_dir / "results.json").read_text())
    except FileNotFoundError:
        return [f"{where}: no results.json (a run writes it when it starts)"], notes
    except (OSError, ValueError) as e:
        return [f"{where}/results.json: not readable JSON ({str(e).splitlines()[0][:120]})"], notes
    if not isinstance(results, dict) or results.get("status") not in STATUSES:
        return [f"{where}/results.json: not a run record (status must be one of {', '.join(STATUSES)})"], notes
    status = state(run_dir, results)
    alive = status == "running"
    resumable = (run_dir / "checkpoints" / "last.ckpt").is_file()
    if status == "dead" and search_running:
        notes.append(f"{where}: dead — killed with its worker; the search's running workers run it again from its "
                     "last.ckpt once its heartbeat has been silent for hydra.sweeper.grace_s")
    elif status == "dead":
        notes.append(f"{where}: dead — results.json says running but no process holds its lock (killed); "
                     + (f"continue with: python -m cnnexp.train resume={run_dir}" if resumable else
                        "it was killed before its first checkpoint was whole: no last.ckpt to continue from, "
                        "run it again"))
    elif alive:
        notes.append(f"{where}: running (a live process holds its lock)")
    if status in ("failed", "interrupted", "pruned", "diverged") and not results.get("reason"):
        findings.append(f"{where}/results.json: status {status} without a reason")

    checkpoints = run_dir / "checkpoints"
    tested = results.get("tested_checkpoint")
    if status == "ok" and tested and tested != "final weights" and not (checkpoints / tested).is_file():
        findings.append(f"{where}/results.json: names {tested}, which is not in checkpoints/")
    for ckpt in sorted(checkpoints.glob("*.ckpt")) if checkpoints.is_dir() else []:
        if not zipfile.is_zipfile(ckpt):
            findings.append(f"{ckpt}: not a whole checkpoint (not a readable zip)")
    if not alive:
        leftovers = [p for p in run_dir.rglob(".*.part")]
        if leftovers:
            notes.append(f"{where}: {len(leftovers)} unfinished temporary file(s) (e.g. {leftovers[0].name}) "
                         "from a killed write; the files they were to replace are whole")

    findings += _check_metrics(run_dir, results, status)
    # settings refused before the run began (a sweep's shape error, a search's rejected trial):
    # the record says so, and it is all the folder holds (`rejected`: a search's, written before `refused`)
    trained = [n for n in ("checkpoints", "metrics.csv") if (run_dir / n).exists()]
    marked = bool(results.get("refused") or results.get("rejected"))
    unmarked = "refused" not in results and not trained and not (run_dir / "config.yaml").exists()  # a grid's, written before `refused`
    refused = status == "failed" and (marked or unmarked)
    if refused and trained:
        findings.append(f"{where}/results.json: says its settings were refused before it ran, "
                        f"but it holds {trained[0]}")
    findings += _check_config(run_dir, not refused)
    return findings, notes


def _check_metrics(run_dir: Path, results: dict, status: str) -> List[str]:
    path = run_dir / "metrics.csv"
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
            return [f"{path}: {len(epochs)} epochs, but results.json ({status}) says {recorded}"]
    return []


def _check_config(run_dir: Path, required: bool) -> List[str]:
    from omegaconf import OmegaConf

    from cnnexp.run.resume import interpolations

    path = run_dir / "config.yaml"
    if not path.is_file():
        return [f"{run_dir}: no config.yaml"] if required else []
    try:
        found = interpolations(OmegaConf.to_container(OmegaConf.load(path), resolve=False))
    except Exception as e:
        return [f"{path}: not readable YAML ({str(e).splitlines()[0][:120]})"]
    return [f"{path}: holds an interpolation ({found[0]}); a record holds values"] if found else []


def check_sweep(folder: Path) -> Tuple[List[str], List[str]]:
    from omegaconf import OmegaConf

    from cnnexp.core.locks import holder
    from cnnexp.records.folder import FIRST_SWEEP_CONFIG as FIRST_RECORD
    from cnnexp.sweeps.relaunch import recorded_sweeper

    findings: List[str] = []
    notes: List[str] = []
    first = folder / FIRST_RECORD
    broken = {}  # each record of the launch that does not parse: each is its own finding
    for path in (folder / "multirun.yaml", *([first] if first.is_file() else [])):
        try:
            OmegaConf.load(path)
        except Exception as e:
            broken[path] = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
    for path, why in broken.items():
        findings.append(f"{path}: not readable YAML ({why})")
    sweep_alive = holder(folder) is not None  # a search's workers share the lock: held by any of them
    search = recorded_sweeper(folder) == "optuna"
    if sweep_alive:
        notes.append(f"{folder}: " + ("a search is running in it (its workers hold its lock)" if search else
                                      "a sweep is running in it (a live process holds its lock)"))
    elif first.is_file() and first not in broken and first.read_bytes() != (folder / "multirun.yaml").read_bytes():
        findings.append(f"{folder}/multirun.yaml: differs from the first launch's ({FIRST_RECORD}); "
                        f"the next python -m cnnexp.train -m resume={folder} puts it back")
    for run_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (run_dir / "results.json").exists() and not (run_dir / "config.yaml").exists():
            continue  # a job that never started: Hydra's folder, no record to check
        f, n = check_run(run_dir, search_running=sweep_alive and search)
        findings += f
        notes += n
    return findings, notes


def check(folder: Path) -> Tuple[List[str], List[str]]:
    if (folder / "multirun.yaml").is_file():
        return check_sweep(folder)
    return check_run(folder)


def main(argv: List[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    from cnnexp.config.args import exit_on_help

    exit_on_help(f"{USAGE}\n\n{__doc__}", args)
    if len(args) != 1:
        fail(USAGE)
    folder = Path(args[0]).expanduser()
    if not folder.is_dir():
        fail(f"{args[0]}: no such folder")
    if not any((folder / n).exists() for n in ("multirun.yaml", "results.json", "config.yaml")):
        fail(f"{args[0]}: neither a run folder (results.json, config.yaml) nor a sweep folder (multirun.yaml)")
    findings, notes = check(folder)
    for line in notes + findings:
        print(line)
    if findings:
        raise SystemExit(1)
    print(f"{folder}: ok — its records keep the promises of docs/records.md")


if __name__ == "__main__":
    from cnnexp.core.console import report_like_cat

    report_like_cat()
    main()
