"""What produced a run, captured as it starts (and once per sweep): the command as typed and its
overrides, the git state of the code that runs (commit, branch, dirty, and the uncommitted change
as a patch, new files included), Python and the installed packages, the machine, the data's
fingerprint. provenance.json holds it, code.patch the change (records/folder.py names them).

Cheap by design (the benchmark prints its cost; docs/reproduce.md): three git calls, the package
list read from the dist-info folder names importlib.metadata itself reads (parsing every METADATA
file costs 0.12 s), /proc for the CPU and memory, and torch only if it is already imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from cnnexp.core.files import write_atomic
from cnnexp.records.folder import code_patch_path, provenance_path

UNTRACKED_LIMIT = 256 * 1024  # a new file larger than this is named, not copied into the patch (data, weights)
REBUILT_FROM = "CNNEXP_REBUILT_FROM"  # set by reproduce code=recorded for its re-run (cnnexp.reproduce)
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the cnnexp package that runs: its checkout is the code


def capture(config: Dict[str, Any], overrides: List[str]) -> Dict[str, Any]:
    """Everything but the patch's text is in the returned mapping; the patch is under `patch`."""
    code, patch = git_state(PACKAGE_ROOT)
    if os.environ.get(REBUILT_FROM) and "note" in code:  # reproduce code=recorded: a copy of a record's code
        code, patch = rebuilt_code(Path(os.environ[REBUILT_FROM]), code, patch)
    return {"captured": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": shlex.join(getattr(sys, "orig_argv", sys.argv)), "overrides": list(overrides),
            "code": code, "patch": patch,
            "packages": {"python": platform.python_version(), **installed_packages()},
            "machine": machine(config), "data": data_fingerprint(config.get("data") or {})}


def rebuilt_code(folder: Path, code: Dict[str, Any], patch: str) -> Tuple[Dict[str, Any], str]:
    """The code reproduce rebuilt from `folder`'s record (its commit and code.patch), as that record
    says it — written as the re-run starts, so a re-run that outlives reproduce still says it."""
    from cnnexp.records.provenance import read_provenance
    from cnnexp.records.reading import RecordError

    try:
        found = read_provenance(folder)
    except (RecordError, OSError):
        found = None
    if not found:
        return code, patch
    return {**found["code"], "rebuilt": f"by cnnexp.reproduce code=recorded from {folder}"}, found.get("patch", "")


def write(folder: Path, found: Dict[str, Any]) -> None:
    """provenance.json, and code.patch where the tree was dirty; each whole or not at all."""
    record = {k: v for k, v in found.items() if k != "patch"}
    if found.get("patch"):
        write_atomic(code_patch_path(folder), found["patch"])
    write_atomic(provenance_path(folder), json.dumps(record, indent=2, default=str) + "\n")


def record(folder: Path, config: Dict[str, Any], overrides: List[str]) -> Dict[str, Any]:
    found = capture(config, overrides)
    write(folder, found)
    return found


# ------------------------------------------------------------------ the code
def _git(where: Path, *args: str) -> Optional[str]:
    try:
        done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, timeout=30,
                              env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"})  # never writes the index
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(where: Path) -> Tuple[Dict[str, Any], str]:
    """({commit, branch, dirty, root, untracked_skipped} or {note}, the patch): the checkout the
    package is imported from, its HEAD, and `git diff HEAD` with each new untracked file as a
    new-file diff (files git ignores are not code)."""
    head = _git(where, "rev-parse", "--show-toplevel", "HEAD", "--abbrev-ref", "HEAD")
    if head is None:
        how = "git is not installed" if _git(Path.cwd(), "--version") is None else "not a git checkout"
        return {"note": f"{how} ({where}): no commit or patch recorded"}, ""
    root, commit, branch = (head.splitlines() + ["", "", ""])[:3]
    status = _git(Path(root), "status", "--porcelain", "-z", "--untracked-files=all") or ""
    entries = [e for e in status.split("\0") if e]
    untracked = [e[3:] for e in entries if e.startswith("?? ")]
    patch = (_git(Path(root), "diff", "HEAD", "--binary") or "") if len(untracked) < len(entries) else ""
    skipped = []
    for name in sorted(untracked):
        added = new_file_diff(Path(root), name)
        if added is None:
            skipped.append(name)
        else:
            patch += added
    code = {"commit": commit, "branch": None if branch == "HEAD" else branch, "dirty": bool(entries), "root": root}
    if skipped:
        code["untracked_skipped"] = skipped[:50]
    return code, patch


def new_file_diff(root: Path, name: str) -> Optional[str]:
    """An untracked file as `git diff` shows a new one (git apply takes it); None for a binary or
    large file, which the record names instead."""
    path = root / name
    try:
        if path.is_symlink() or path.stat().st_size > UNTRACKED_LIMIT:
            return None
        text = path.read_bytes().decode()
    except (OSError, UnicodeDecodeError):
        return None
    if "\0" in text:
        return None
    lines = text.splitlines(keepends=True)
    body = "".join("+" + line for line in lines)
    if lines and not lines[-1].endswith("\n"):
        body += "\n\\ No newline at end of file\n"
    mode = "100755" if os.access(path, os.X_OK) else "100644"
    hunk = f"@@ -0,0 +1,{len(lines)} @@\n" if lines else ""
    return (f"diff --git a/{name} b/{name}\nnew file mode {mode}\n" + ("--- /dev/null\n" f"+++ b/{name}\n" if lines else "")
            + hunk + body)


# ------------------------------------------------------------------ packages and machine
def installed_packages() -> Dict[str, str]:
    """name → version of every installed distribution on sys.path (the dist-info and egg-info
    folder names, as importlib.metadata finds them; the first on the path wins, as imports do)."""
    found: Dict[str, str] = {}
    for entry in sys.path:
        try:
            listing = os.scandir(entry or ".")
        except OSError:
            continue
        with listing:
            for item in listing:
                if item.name.endswith((".dist-info", ".egg-info")):
                    name, _, version = item.name.rsplit(".", 1)[0].partition("-")
                    found.setdefault(name.lower().replace("_", "-"), version.split("-py")[0])
    return dict(sorted(found.items()))


def _proc(path: str, key: str) -> Optional[str]:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine(config: Dict[str, Any]) -> Dict[str, Any]:
    """CPU model, cores, memory, OS; torch's threads and the GPU when torch is already imported
    (a sweep's record is written before torch is); the run's determinism settings."""
    memory = _proc("/proc/meminfo", "MemTotal")
    trainer = config.get("trainer") or {}
    found = {"cpu": _proc("/proc/cpuinfo", "model name") or platform.processor() or platform.machine(),
             "cores": os.cpu_count(), "memory": memory, "os": platform.platform(), "hostname": platform.node(),
             "deterministic": trainer.get("deterministic")}  # the seed is the config's
    torch = sys.modules.get("torch")
    if torch is not None:
        found.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
        if torch.cuda.is_available():
            found["gpu"] = torch.cuda.get_device_name(0)
            found["cuda"] = torch.version.cuda
            found["gpu_driver"] = driver_version(_proc("/proc/driver/nvidia/version", "NVRM version") or "")
    return found


def driver_version(line: str) -> Optional[str]:
    """NVIDIA's driver from /proc's `NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 …`."""
    found = re.search(r"\b\d+\.\d+(?:\.\d+)?\b", line)
    return found.group(0) if found else None


# ------------------------------------------------------------------ data
def data_fingerprint(data: Dict[str, Any]) -> Dict[str, Any]:
    """MNIST: the checksums data/idx.py verifies its files against (a run reads no other bytes);
    a folder of images: a hash of its file list with sizes."""
    name = data.get("name")
    if name == "mnist":
        from cnnexp.data.idx import SHA256

        return {"name": "mnist", "sha256": hashlib.sha256("".join(SHA256.values()).encode()).hexdigest()[:16]}
    root = Path(str(data.get("root") or "")).expanduser()
    listing = hashlib.sha256()
    n = 0
    for base, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            path = Path(base) / f
            try:
                size = path.stat().st_size
            except OSError:
                continue
            listing.update(f"{path.relative_to(root)}\0{size}\n".encode())
            n += 1
    return {"name": str(name), "files": n, "list_sha256": listing.hexdigest()[:16]}
