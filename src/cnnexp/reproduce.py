"""`python -m cnnexp.reproduce RUN [force=true] [code=recorded] [tolerance=0.001] [out=DIR] [key=value …]`:
a run re-run from its folder alone, in a new folder, and each recorded metric said to come back or not.

Before training it says what differs from what RUN recorded in provenance.json — the code (commit,
uncommitted change), the packages, the data — and goes on only with force=true; `code=recorded`
instead runs the recorded code (the commit from this checkout's git, code.patch applied) from a
temporary copy. RUN is never written to. Exact agreement is expected on the CPU with the same
torch threads and packages; otherwise within `tolerance` (relative, default 0.001). docs/reproduce.md.
"""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from cnnexp.core.catalogue import QUALITY
from cnnexp.core.errors import RunError, UserError, fail
from cnnexp.records.folder import RESULTS, code_patch_path, is_run, is_sweep, load_results, read_config, results_path
from cnnexp.records.provenance import COMMIT, NOT_RECORDED, differences, overrides_problem, short

USAGE = """usage: python -m cnnexp.reproduce RUN [force=true] [code=recorded] [tolerance=0.001] [out=DIR] [key=value …]

  RUN            a run folder (outputs/<date>/<time>, or one run of a sweep or search)
  force=true     re-run although the code, packages or data differ from what RUN recorded
  code=recorded  run the recorded code: its commit (from this checkout's git) with its code.patch
  tolerance=T    how far (relative) a metric may come back where exact agreement is not expected
  out=DIR        the new run's folder (default: <its output_dir>/reproduced/<RUN's name>-<time>)
  key=value      any other setting, passed to the re-run (e.g. trainer.accelerator=cpu)

Says what differs before training, then per recorded metric: exact, within tolerance, or not."""

OPTIONS = ("force", "code", "tolerance", "out")
COMPARED = ("best", "best_epoch", "epochs", *(m.key for m in QUALITY))  # results.json's numbers of how it learned


def parse(args: List[str]) -> Tuple[str, Dict[str, str], List[str]]:
    """(RUN, options, the settings passed on); each mistake one line naming it."""
    # a sweep's run is named by its settings (kernel_size=5): an existing folder is the folder
    folders = [a for a in args if "=" not in a or Path(a).expanduser().is_dir()]
    args = [a for a in args if a not in folders]
    if len(folders) != 1:
        raise RunError(f"name one run folder ({len(folders)} given: {' '.join(folders) or 'none'}); "
                       "usage: python -m cnnexp.reproduce RUN [force=true] [code=recorded] (--help)")
    options = {k: v for k, _, v in (a.partition("=") for a in args if "=" in a) if k in OPTIONS}
    if options.get("force", "false") not in ("true", "false"):
        raise RunError(f"force={options['force']}: true or false")
    if options.get("code", "current") not in ("current", "recorded"):
        raise RunError(f"code={options['code']}: current (the code here) or recorded (the run's commit and code.patch)")
    try:
        tolerance = float(options.get("tolerance", "0.001"))
    except ValueError:
        tolerance = -1.0
    if not tolerance >= 0:
        raise RunError(f"tolerance={options['tolerance']}: a number ≥ 0, the relative difference allowed, e.g. 0.001")
    options["tolerance"] = str(tolerance)
    passed = [a for a in args if "=" in a and a.partition("=")[0] not in OPTIONS]
    return folders[0], options, passed


def open_recorded(text: str) -> Tuple[Path, dict, dict, dict]:
    """(folder, results.json, provenance.json, config.yaml) of a run that ended ok and recorded
    where it came from; anything else is one line."""
    from cnnexp.records.provenance import read_provenance

    folder = Path(text).expanduser()
    if not folder.is_dir():
        raise RunError(f"{text}: no such folder")
    if is_sweep(folder) or (not is_run(folder) and any(is_run(p) for p in folder.iterdir() if p.is_dir())):
        raise RunError(f"{text}: a sweep, not a run; reproduce one of its runs, e.g. "
                       f"{next((p for p in sorted(folder.iterdir()) if is_run(p)), folder / 'RUN')}")
    if not is_run(folder):
        raise RunError(f"{text}: not a run folder (no config.yaml); pass a folder under outputs/")
    results = load_results(folder)
    if not results or results.get("status") != "ok":
        raise RunError(f"{text}: this run did not end ok (status {(results or {}).get('status', 'unknown')}); "
                       "there are no final metrics to reproduce")
    found = read_provenance(folder)
    if found is None:
        raise RunError(f"{text}: {NOT_RECORDED}; what produced it is unknown, so it cannot be reproduced — "
                       f"run it again with: python -m cnnexp.train {' '.join(results.get('overrides', []))}".rstrip())
    return folder, results, found, read_config(folder)


def recorded_code(found: dict, folder: Path, into: Path) -> Path:
    """The recorded commit (from this checkout's git) with code.patch applied, in `into`."""
    from cnnexp.run.provenance import PACKAGE_ROOT, _git

    commit = found["code"].get("commit")
    if not commit:
        raise RunError(f"{folder}: recorded no commit ({found['code'].get('note', 'no git state')}); "
                       "code=recorded needs one — re-run the code here with force=true")
    if not COMMIT.fullmatch(str(commit)):  # read_provenance checked it; git never sees an option from a record
        raise RunError(f"{folder}: code.commit {short(repr(commit), 40)} is not a commit (7 to 40 hex digits)")
    root = _git(PACKAGE_ROOT, "rev-parse", "--show-toplevel")
    archive = subprocess.run(["git", "-C", root.strip(), "archive", "--end-of-options", commit],
                             capture_output=True) if root else None
    if archive is None or archive.returncode != 0:
        raise RunError(f"commit {commit[:12]} (what {folder} ran) is not in this checkout's git "
                       f"({PACKAGE_ROOT}); fetch it, or re-run the code here with force=true")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    if found.get("patch"):
        applied = subprocess.run(["git", "apply", "--whitespace=nowarn", str(code_patch_path(folder).absolute())],
                                 cwd=into, capture_output=True, text=True)
        if applied.returncode != 0:
            why = (applied.stderr.strip().splitlines() or ["?"])[0]
            raise RunError(f"{code_patch_path(folder)}: no longer applies to commit {commit[:12]} ({why}); "
                           "nothing was run — re-run the code here with force=true")
    return into


def what_differs(found: dict, config: dict, overrides: List[str], recorded_run: bool) -> List[str]:
    """The code (unless the recorded code runs), packages and data now, against the record: one
    line per difference."""
    from cnnexp.run.provenance import capture

    now = capture(config, overrides)
    sections = ("packages", "data") if recorded_run else ("code", "packages", "data")
    return [f"  {section}: {short(key, 40)}: recorded {short(a, 24)}, now {short(b, 24)}"
            for section, key, a, b in differences(found, now, sections)]


def new_folder(folder: Path, config: dict, out: Optional[str]) -> Path:
    """The new run's folder, resolved (`..` folded, links followed): never inside RUN, never a file
    or a folder that holds something already."""
    output_dir = str((config.get("paths") or {}).get("output_dir") or "outputs")
    where = (Path(out).expanduser() if out else
             Path(output_dir).expanduser() / "reproduced" / f"{folder.name}-{time.strftime('%Y-%m-%d_%H-%M-%S')}"
             ).resolve()
    run = folder.resolve()
    if where == run or run in where.parents:
        said = f"out={out}" if out else f"its config.yaml's paths.output_dir={output_dir}"
        raise RunError(f"{said}: leads inside {folder} ({where}); a reproduction never writes into the run it "
                       "re-runs — name another folder: out=DIR")
    if where.is_file() or (where.is_dir() and any(where.iterdir())):
        raise RunError(f"out={out or where}: {'a file' if where.is_file() else 'a folder that holds files already'}; "
                       "a reproduction makes a new run folder — name a new one: out=DIR")
    return where


def writes_inside(folder: Path, overrides: List[str]) -> None:
    """A recorded override that names a place to write (a folder key, a tracking store) and leads
    inside RUN, or the sweep around it, is refused: a reproduction writes nothing into what it reads."""
    from cnnexp.config.schema import PATH_KEYS

    handed = [folder.resolve(), *(p for p in folder.resolve().parents if is_sweep(p))]
    for o in overrides:
        key, _, value = o.partition("=")
        key = key.lstrip("+~")
        if key not in PATH_KEYS and not key.endswith(("_uri", "_dir", ".dir", ".root", ".path")):
            continue
        path = value.strip("'\"")
        for scheme in ("sqlite:///", "file://", "file:"):
            path = path[len(scheme):] if path.startswith(scheme) else path
        if "://" in path or not path:
            continue  # a server: not a place in RUN
        where = Path(path).expanduser().resolve()
        if any(where == h or h in where.parents for h in handed):
            raise RunError(f"{folder}: its recorded override {o} leads inside it ({where}); a reproduction "
                           f"never writes into the folder it re-runs — give {key}= another place on the command line")


def retrain(overrides: List[str], passed: List[str], where: Path, code: Optional[Path], folder: Path) -> int:
    """`python -m cnnexp.train` with the recorded overrides (where it was written and resume= left
    out), the settings passed on, into `where`; its console is the user's. With the recorded code,
    the re-run's own provenance.json names the record's code as it starts (CNNEXP_REBUILT_FROM), so
    a re-run that outlives this process still says what it ran; it stops when this process dies."""
    given = {a.partition("=")[0].lstrip("+~") for a in passed}
    kept = [o for o in overrides if not o.startswith(("resume=", "hydra.", "hydra/"))
            and o.partition("=")[0].lstrip("+~") not in given]
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code / "src"), *filter(None, [env.get("PYTHONPATH")])])
        from cnnexp.run.provenance import REBUILT_FROM

        env[REBUILT_FROM] = str(folder.resolve())
    command = [sys.executable, "-m", "cnnexp.train", *kept, *passed, f"hydra.run.dir={where}"]
    return subprocess.run(command, env=env, cwd=str(code) if code is not None else None,
                          preexec_fn=_stop_with_parent).returncode


def _stop_with_parent() -> None:
    """Linux: the re-run gets SIGTERM (a recorded stop) when reproduce is killed, even by SIGKILL."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def own_class_named(folder: Path, config: dict, overrides: List[str], passed: List[str]) -> None:
    """A model=own run's class is imported only when the user names it again (config.own_network):
    model._target_=pkg.Class passed here, the same as the record's; no other `_target_` from a record."""
    recorded = {o.partition("=")[0].lstrip("+~"): o.partition("=")[2] for o in overrides}
    # any other `_target_`, in a key or inside a value (`+model={_target_:x.Y}`), names code to import
    foreign = next((k for k, v in recorded.items() if k != "model._target_" and "_target_" in k + v), None)
    if foreign:
        raise RunError(f"{folder}: its recorded overrides set {foreign}, which names code to import; "
                       "not what cnnexp writes — nothing was run")
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    in_config = model.get("_target_") if model.get("name") == "own" else None
    names = {t for t in (recorded.get("model._target_"), in_config) if t}
    if not names and recorded.get("model") != "own":
        return
    if len(names) != 1:
        raise RunError(f"{folder}: its config.yaml and provenance.json name different network classes "
                       f"({', '.join(sorted(names)) or 'none'}); edited by hand — nothing was run")
    target = names.pop()
    typed = {a.partition("=")[2] for a in passed if a.partition("=")[0].lstrip("+") == "model._target_"}
    if typed != {target}:
        raise RunError(f"{folder} is a model=own run of {target}; a folder's word imports no code — if you trust "
                       f"it, name it yourself: add model._target_={target} (docs/own-network.md)")


def verdict(before: dict, after: dict, exact: bool, tolerance: float) -> Tuple[List[str], bool]:
    """Per recorded metric: exact, within tolerance, or not — and whether all came back."""
    lines, ok = [f"  {'metric':<16} {'recorded':>12} {'now':>12}  "], True
    for key in COMPARED:
        a, b = before.get(key), after.get(key)
        if not isinstance(a, (int, float)) or isinstance(a, bool):
            continue
        if not isinstance(b, (int, float)) or isinstance(b, bool):
            lines.append(f"  {key:<16} {a:>12} {'—':>12}  missing")
            ok = False
            continue
        same = a == b
        close = same or (not exact and math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance))
        ok &= close
        lines.append(f"  {key:<16} {a:>12.6g} {b:>12.6g}  " + ("exact" if same else f"within {tolerance:g}" if close
                                                               else f"differs by {b - a:+.3g}"))
    return lines, ok


def expected_exact(found: dict, now: dict) -> bool:
    """Same bits expected: the CPU on both sides, the same torch threads and the same packages."""
    a, b = found.get("machine") or {}, now.get("machine") or {}
    return "gpu" not in a and "gpu" not in b and a.get("torch_threads", 0) == b.get("torch_threads", -1) \
        and found.get("packages") == now.get("packages")


def reproduce(text: str, options: Dict[str, str], passed: List[str]) -> bool:
    """Check, say what differs, re-run, and say per metric whether it came back."""
    from cnnexp.records.provenance import read_provenance

    folder, results, found, config = open_recorded(text)
    overrides = found.get("overrides") or results.get("overrides") or []
    wrong = overrides_problem(overrides, f"{RESULTS}'s overrides")  # provenance.json's: read_provenance
    if wrong:
        raise RunError(f"{folder}: {wrong}; not what cnnexp writes — nothing was run")
    own_class_named(folder, config, overrides, passed)
    writes_inside(folder, [o for o in overrides
                           if o.partition("=")[0].lstrip("+~") not in {a.partition("=")[0].lstrip("+~") for a in passed}])
    recorded_run = options.get("code") == "recorded"
    where = new_folder(folder, config, options.get("out"))
    differs = what_differs(found, config, overrides, recorded_run)
    print(f"reproducing {folder}\n  recorded: {describe(found)}; {time_of(found)}")
    if differs:
        print("what differs from the record:\n" + "\n".join(differs))
        if options.get("force") != "true":
            raise RunError(f"{len(differs)} difference{'s' * (len(differs) > 1)} from what {folder} recorded "
                           "(above); nothing was run — re-run anyway with force=true"
                           + ("" if recorded_run else ", or run the recorded code with code=recorded"))
    else:
        print("what differs from the record: nothing (" + ("packages, data" if recorded_run else "code, packages, data")
              + " as recorded)")
    # removed on every exit Python sees (an error, Ctrl-C, SIGTERM); a SIGKILL leaves it (docs/reproduce.md)
    with tempfile.TemporaryDirectory(prefix="cnnexp-recorded-code-") as scratch:
        code = recorded_code(found, folder, Path(scratch)) if recorded_run else None
        print(f"re-running into {where}" + (f" with the recorded code ({scratch})" if code else "") + "\n", flush=True)
        rc = retrain(overrides, passed, where, code, folder)
    if recorded_run and rc == 0:  # a commit older than CNNEXP_REBUILT_FROM captured its temporary copy
        from cnnexp.run.provenance import write

        write(where, {**(read_provenance(where) or {}), "patch": found.get("patch", ""),
                      "code": {**found["code"],
                               "rebuilt": f"by cnnexp.reproduce code=recorded from {folder.resolve()}"}})
    after = load_results(where) if is_run(where) or results_path(where).exists() else None
    if rc != 0 or not after or after.get("status") != "ok":
        made = f"its folder: {where}" if where.is_dir() and any(where.iterdir()) else "no folder was made"
        raise RunError(f"the re-run did not end ok (exit {rc}, status {(after or {}).get('status', 'none')}); {made}")
    exact = expected_exact(found, read_provenance(where) or {})
    tolerance = float(options["tolerance"])
    lines, ok = verdict(results, after, exact, tolerance)
    print(f"\nper recorded metric ({'exact agreement expected: CPU, same torch threads and packages' if exact else f'within {tolerance:g} relative expected'}):")
    print("\n".join(lines))
    print(("reproduced: every recorded metric came back" if ok else "not reproduced: a metric did not come back")
          + f" — new run: {where}")
    return ok


def describe(found: dict) -> str:
    code = found.get("code") or {}
    if not code.get("commit"):
        return code.get("note", "no git state")
    return f"commit {code['commit'][:12]}" + (f" ({code['branch']})" if code.get("branch") else "") + \
        (", with uncommitted changes (code.patch)" if code.get("dirty") else ", clean")


def time_of(found: dict) -> str:
    return f"captured {found.get('captured', '?')} on {short((found.get('machine') or {}).get('cpu', '?'), 40)}"


def main(argv: List[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print(USAGE)
        raise SystemExit(0)
    try:
        text, options, passed = parse(args)
        ok = reproduce(text, options, passed)
    except UserError as e:
        fail(e)
    except OSError as e:
        from cnnexp.core.files import os_error_line

        fail(os_error_line(e))
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    from cnnexp.core.console import report_like_cat
    from cnnexp.core.stopping import run_command

    report_like_cat()
    run_command(main, "RUN was not written to")
