"""`python -m cnnexp.check FOLDER`: does a run or sweep folder keep its promises (docs/records.md)?

    python -m cnnexp.check outputs/2026-11-25/10-31-02            # a run
    python -m cnnexp.check outputs/multirun/2026-11-25/10-31-02   # a sweep, and each of its runs

One line per finding, then exit 1; none: one line saying so, exit 0. A finding is anything that is
not as a finished record promises — a dead run (`running`, its lock not held: killed; `resume=`
continues it) included. Only what is alive is a note: a run whose process holds its lock
(`.cnnexp.lock`), a sweep a live process (or a search's workers) holds. The folder is data: each
record is read only as a plain file of the folder (never through a link out of it, never a device
or a pipe, never a file larger than a record), each refusal its own finding. Checkpoints are
opened as eval opens them, with their weights only; torch is imported only for one that holds
more than the weights a cnnexp run writes.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import sys
import zipfile
import zlib
from pathlib import Path
from typing import List, Optional, Tuple

from cnnexp.core.errors import UserError, fail
from cnnexp.records.folder import (CHECKPOINTS, CONFIG, RESULTS, STOPPED, SWEEP_CONFIG, RecordError,
                                   checkpoint_dir, config_path, holds_run_record, metrics_path, read_config,
                                   read_epochs, read_record_text, record_file, results_path,
                                   resumable, stale_parts, sweep_config_path)
from cnnexp.records.reading import links_out, parse_json
from cnnexp.records.values import record_problems
from cnnexp.run.outcome import what_resume_does
from cnnexp.run.resume import state
from cnnexp.core.console import command

USAGE = ("usage: python -m cnnexp.check FOLDER — a run folder (outputs/<date>/<time>) or a sweep folder "
         "(outputs/multirun/<date>/<time>); prints one line per broken promise of docs/records.md, exit 1 if any")


def run_findings(run_dir: Path, search_running: bool = False) -> Tuple[List[str], List[str]]:
    """(findings, notes) for one run folder; `search_running`: it is a trial of a search whose
    workers are alive, which run a killed trial again themselves (a note, not a finding)."""
    results, findings = _results(run_dir)
    if results is None:
        return findings, []
    status = state(run_dir, results)
    findings, notes = _liveness(run_dir, results, status, search_running)
    if status in STOPPED and not results.get("reason"):
        findings.append(f"{run_dir}/{RESULTS}: status {status} without a reason")
    findings += [f"{results_path(run_dir)}: {problem}" for problem in record_problems(results)]
    findings += _checkpoint_findings(run_dir, results, status)
    parts = stale_parts(run_dir) if status != "running" else []
    if parts:
        findings.append(f"{run_dir}: {len(parts)} unfinished temporary file(s) (e.g. {parts[0].name}) left by a "
                        "killed write; the files they were to replace are whole — a resume removes them, or "
                        "delete them")
    findings += _epoch_findings(run_dir, results, status)
    refused, trained = _refused(run_dir, results, status)
    if refused and trained:
        findings.append(f"{run_dir}/{RESULTS}: says its settings were refused before it ran, "
                        f"but it holds {trained[0]}")
    untrained = status == "interrupted" and results.get("untrained") is True  # a sweep job stopped as it started
    findings += _config_findings(run_dir, not refused and not untrained)
    findings += [f"{link}: " + (f"a link to {link.resolve()}, outside {run_dir}" if link.is_symlink() else
                                "a hard link, the same file as one elsewhere") + "; a resume would write through it"
                 for link in links_out(run_dir, depth=2) if not any(str(link) in f for f in findings)]
    return findings, notes


def _results(run_dir: Path) -> Tuple[Optional[dict], List[str]]:
    """results.json parsed, or None and the one finding that says why not."""
    path = results_path(run_dir)
    try:
        text = read_record_text(run_dir, path)
    except RecordError as e:
        return None, [str(e)]
    if text is None:
        return None, [f"{run_dir}: no {RESULTS} (a run writes it when it starts)"]
    try:
        results = parse_json(path, text)
    except RecordError as e:
        return None, [str(e)]
    problems = record_problems(results)
    if not isinstance(results, dict) or problems and problems[0].startswith("not a run record"):
        return None, [f"{path}: {problems[0]}"]
    return results, []


def _liveness(run_dir: Path, results: dict, status: str, search_running: bool) -> Tuple[List[str], List[str]]:
    """A `running` record: alive (its lock held: a note) or dead (a finding, and how it goes on)."""
    where = str(run_dir)
    if status == "dead" and search_running:
        return [], [f"{where}: dead — killed with its worker; the search's running workers run it again from its "
                    "last.ckpt once its heartbeat has been silent for hydra.sweeper.grace_s"]
    if status == "dead":
        return [f"{where}: dead — {RESULTS} says running but no process holds its lock (killed); "
                + (what_resume_does(run_dir) if resumable(run_dir, results["status"])
                   else "it was killed before its first checkpoint was whole: no last.ckpt to continue from, "
                        "run it again")], []
    if status == "running":
        return [], [f"{where}: running (a live process holds its lock)"]
    return [], []


def _checkpoint_findings(run_dir: Path, results: dict, status: str) -> List[str]:
    """The checkpoint the record says it tested is there, and every checkpoint opens as eval opens it."""
    checkpoints = checkpoint_dir(run_dir)
    root = run_dir.resolve()
    if checkpoints.is_symlink() and root not in checkpoints.resolve().parents:
        return [f"{checkpoints}: a link to {checkpoints.resolve()}, outside {run_dir}; a run's checkpoints are "
                "files of its own folder, and a link out of it is not followed"]
    if checkpoints.exists() and not checkpoints.is_dir():
        return [f"{checkpoints}: not a folder"]
    findings = []
    tested = results.get("tested_checkpoint")
    if status == "ok" and isinstance(tested, str) and tested != "final weights" and \
            not os.path.lexists(checkpoints / Path(tested).name):
        findings.append(f"{run_dir}/{RESULTS}: names {tested}, which is not in {CHECKPOINTS}/")
    for ckpt in sorted(checkpoints.glob("*.ckpt")) if checkpoints.is_dir() else []:
        try:
            problem = record_file(run_dir, ckpt) and checkpoint_problem(ckpt)
        except RecordError as e:
            problem = str(e).split(": ", 1)[1]
        if problem:
            findings.append(f"{ckpt}: {problem}")
    return findings


# What a checkpoint a cnnexp run writes holds besides plain data: opened without torch where it holds
# only these (tests/test_run_records.py checks torch's weights-only loader allows each); anything
# else is left to torch's own verdict.
WEIGHTS_GLOBALS = {"collections OrderedDict", "torch._utils _rebuild_tensor_v2", "torch._utils _rebuild_parameter"}
PLAIN_OPS = {"PROTO", "STOP", "MARK", "GLOBAL", "REDUCE", "BUILD", "BINPERSID", "EMPTY_DICT", "EMPTY_LIST",
             "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "APPEND", "APPENDS", "SETITEM", "SETITEMS", "NONE",
             "NEWTRUE", "NEWFALSE", "BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT", "BINUNICODE",
             "SHORT_BINUNICODE", "BINGET", "LONG_BINGET", "BINPUT", "LONG_BINPUT", "MEMOIZE"}


def checkpoint_problem(path: Path) -> Optional[str]:
    """Why eval could not open this checkpoint (None: it can): not a whole zip, or not what
    `cnnexp.run.restore.load_checkpoint` accepts — weights only, with the run's config."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == "data.pkl"]
            data = archive.read(pickles[0]) if len(pickles) == 1 and \
                archive.getinfo(pickles[0]).file_size < 2**26 else None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, zlib.error):
        return "not a whole checkpoint (not a readable zip)"
    if data is not None:
        plain = _plain_checkpoint(data)
        if plain is not None:
            return None if plain else "not a cnnexp checkpoint (no state_dict with its run config)"
    from cnnexp.run.restore import load_checkpoint  # torch's own verdict

    try:
        load_checkpoint(path)
    except UserError as e:
        return str(e).split(": ", 1)[1] if str(e).startswith(str(path)) else str(e)
    return None


class _Tensor:
    """What stands for a tensor or its storage while a checkpoint is read without torch."""

    def __init__(self, *args, **kwargs):
        pass


class _WeightsOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if f"{module} {name}" == "collections OrderedDict":
            from collections import OrderedDict

            return OrderedDict
        return _Tensor  # only names in WEIGHTS_GLOBALS or torch's storages get here (`_plain_checkpoint`)

    def persistent_load(self, pid):
        return _Tensor()


def _plain_checkpoint(data: bytes) -> Optional[bool]:
    """Whether a checkpoint's pickle is a cnnexp checkpoint, where it holds only plain data and
    weights; None where it holds anything else (torch decides then)."""
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name not in PLAIN_OPS or op.name == "GLOBAL" and not (
                    arg in WEIGHTS_GLOBALS or arg.startswith("torch ") and arg.endswith("Storage")):
                return None
        checkpoint = _WeightsOnly(io.BytesIO(data)).load()
    except Exception:
        return None
    hyper = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    return isinstance(hyper, dict) and "state_dict" in checkpoint and "run_config" in hyper


def _refused(run_dir: Path, results: dict, status: str) -> Tuple[bool, List[str]]:
    """Whether the record says its settings were refused before the run began (a sweep's shape
    error, a search's rejected trial) — then it is all the folder holds — and what the folder
    holds of a training all the same. `rejected`: a search's, and a record with neither mark
    nor config a grid's, both written before `refused` existed."""
    trained = [p.name for p in (checkpoint_dir(run_dir), metrics_path(run_dir)) if p.exists()]
    marked = bool(results.get("refused") or results.get("rejected"))
    unmarked = "refused" not in results and not trained and not config_path(run_dir).exists()
    return status == "failed" and (marked or unmarked), trained


def _epoch_findings(run_dir: Path, results: dict, status: str) -> List[str]:
    """metrics.csv holds each epoch once, in order from 0, and no more than the record says."""
    try:
        epochs = read_epochs(run_dir)
    except RecordError as e:
        return [str(e)]
    path = metrics_path(run_dir)
    if epochs is None:
        return []
    if epochs != list(range(len(epochs))):
        return [f"{path}: epochs {epochs[:12]} are not each epoch once, in order from 0"]
    recorded = results.get("epochs")
    if isinstance(recorded, int) and not isinstance(recorded, bool) and status not in ("running", "dead"):
        allowed = recorded if status == "ok" else recorded + 1  # a stop may fall after its epoch's row
        if len(epochs) > allowed:
            return [f"{path}: {len(epochs)} epochs, but {RESULTS} ({status}) says {recorded}"]
        if len(epochs) < recorded:  # rows lost: a resume would append after a gap
            return [f"{path}: {len(epochs)} epochs, but {RESULTS} ({status}) says {recorded} were trained"]
    return []


def _config_findings(run_dir: Path, required: bool) -> List[str]:
    """config.yaml is there (unless the run was refused), a plain file of the folder, holds values
    only, and they are a run's settings (as resume= and the settings check read them)."""
    from cnnexp.config.settings import load

    path = config_path(run_dir)
    if not path.exists() and not path.is_symlink():
        return [f"{run_dir}: no {CONFIG}"] if required else []
    try:
        load(read_config(run_dir))
    except RecordError as e:
        return [str(e)]
    except UserError as e:
        return [f"{path}: does not hold a run's settings ({e})"]
    return []


def sweep_findings(folder: Path) -> Tuple[List[str], List[str]]:
    """(findings, notes) for a sweep folder: its records of the launch, then each of its runs."""
    from cnnexp.core.locks import holder
    from cnnexp.records.folder import FIRST_SWEEP_CONFIG
    from cnnexp.search.study import study_problem
    from cnnexp.sweeps.relaunch import recorded_sweeper

    findings: List[str] = []
    notes: List[str] = []
    first = folder / FIRST_SWEEP_CONFIG
    broken = {}  # each record of the launch that cannot be read: each is its own finding
    for path in (sweep_config_path(folder), *([first] if first.exists() or first.is_symlink() else [])):
        try:
            read_config(folder, path, values_only=False)
        except RecordError as e:
            broken[path] = str(e)
    findings += broken.values()
    findings += filter(None, [study_problem(folder)])  # read-only; a database the folder names is not connected to
    sweep_alive = holder(folder) is not None  # a search's workers share the lock: held by any of them
    recorded = first if first.is_file() else sweep_config_path(folder)  # what recorded_sweeper reads
    search = recorded not in broken and recorded_sweeper(folder) == "optuna"
    if sweep_alive:
        notes.append(f"{folder}: " + ("a search is running in it (its workers hold its lock)" if search else
                                      "a sweep is running in it (a live process holds its lock)"))
    elif first.is_file() and first not in broken and _plain(folder, sweep_config_path(folder)) and \
            first.read_bytes() != sweep_config_path(folder).read_bytes():
        findings.append(f"{folder}/{SWEEP_CONFIG}: differs from the first launch's ({FIRST_SWEEP_CONFIG}); "
                        f"the next {command('train', '-m', f'resume={folder}')} puts it back")
    notes += _stale_summary(folder)
    for entry in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
        if entry.is_symlink():
            findings.append(f"{entry}: a link (to {entry.resolve()}); a sweep's runs are folders of its own, "
                            "and a link is not followed")
        elif entry.is_dir() and holds_run_record(entry):  # a job that never started holds no record
            f, n = run_findings(entry, search_running=sweep_alive and search)
            findings += f
            notes += n
    return findings, notes


def _stale_summary(folder: Path) -> List[str]:
    """The mark a run resumed on its own leaves (records/folder.py SUMMARY_STALE): the summary is
    older than those runs' records — a note (nothing is broken; `summary` rebuilds it and clears it)."""
    from cnnexp.records.folder import SUMMARY, stale_runs

    names = stale_runs(folder)
    if not names:
        return []
    shown = ", ".join(n[:80] for n in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return [f"{folder}/{SUMMARY}: older than the run{'s' if len(names) > 1 else ''} resumed since ({shown}); "
            f"{command('summary', str(folder))} rebuilds it"]


def _plain(folder: Path, path: Path) -> bool:
    """A plain file of `folder` (a broken one may be, and is compared; a link out or a pipe is not read)."""
    try:
        return record_file(folder, path) is not None
    except RecordError:
        return False


def folder_findings(folder: Path) -> Tuple[List[str], List[str]]:
    """(findings, notes) for a sweep folder or a run folder, whichever `folder` is (a multirun.yaml
    that is no plain file still makes it a sweep: its finding says what it is)."""
    return sweep_findings(folder) if os.path.lexists(sweep_config_path(folder)) else run_findings(folder)


def main(argv: List[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    from cnnexp.config.args import exit_on_help, folder_argument
    from cnnexp.config.own_network import never_import

    never_import()  # a read-only command: no class a handed folder names is ever imported
    from cnnexp.core.errors import printable

    exit_on_help(f"{USAGE}\n\n{__doc__}", args)
    if len(args) != 1:
        fail(USAGE)
    folder = folder_argument(args[0])
    if not folder.is_dir():
        fail(f"{args[0]}: no such folder")
    if not os.path.lexists(sweep_config_path(folder)) and not holds_run_record(folder):
        fail(f"{args[0]}: neither a run folder ({RESULTS}, {CONFIG}) nor a sweep folder ({SWEEP_CONFIG})")
    findings, notes = folder_findings(folder)
    for line in notes + findings:
        print(printable(line))  # one finding, one line: a newline in a folder's name is shown escaped
    if findings:
        raise SystemExit(1)
    print(printable(f"{folder}: ok — its records keep the promises of docs/records.md"))


if __name__ == "__main__":
    from cnnexp.core.console import report_like_cat
    from cnnexp.core.stopping import run_command

    report_like_cat()
    run_command(main, "nothing was written")
