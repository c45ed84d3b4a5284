"""How the benchmark runs cnnexp: checked settings composed in this process, and `python -m
cnnexp.train` launched as a user launches it (exit code, wall seconds, peak memory, what its
record says); the machine's load, and mean ± sd of what was measured."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

from cnnexp.records.folder import RESULTS

PEAK_MB: Dict[str, float] = {}  # the last command's peak resident memory

# Linux carries a process's peak memory across exec, so a child forked from this (large) process
# would report at least this process's size: a small launcher forks the command and reports its peak.
PEAK_OF_CHILD = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[2:]); _, status, usage = os.wait4(p.pid, 0); "
                 "open(sys.argv[1], 'w').write(str(usage.ru_maxrss)); sys.exit(os.waitstatus_to_exitcode(status))")


def compose_settings(overrides: List[str]):
    """The checked settings of conf/ with these overrides."""
    from cnnexp.config.compose import compose_config
    from cnnexp.config.settings import load

    return load(compose_config(overrides))


def launch(command: List[str], cwd: Path, env: Dict[str, str] | None = None, memory: bool = True) -> tuple[int, float]:
    """A command as a user runs it: exit code and wall seconds; its peak resident memory goes to
    PEAK_MB["last"] (memory=False: started directly, for start-up times)."""
    with tempfile.TemporaryDirectory() as tmp:
        peak = Path(tmp) / "peak_kb"
        started = time.perf_counter()
        rc = subprocess.run([sys.executable, "-c", PEAK_OF_CHILD, str(peak), *command] if memory else command,
                            cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        seconds = time.perf_counter() - started
        PEAK_MB["last"] = int(peak.read_text()) / 1024 if peak.exists() else float("nan")
    return rc, seconds


def cli(args: List[str], cwd: Path, memory: bool = True) -> tuple[int, float]:
    """`python -m cnnexp.train args`."""
    return launch([sys.executable, "-m", "cnnexp.train", *args], cwd, memory=memory)


def record_of(out: Path) -> Dict:
    """The results.json of the one run a launch wrote under paths.output_dir=`out`."""
    return json.loads(next(out.glob(f"*/*/{RESULTS}")).read_text())


def whole_process(overrides: List[str], workdir: Path) -> Dict[str, float]:
    """One `python -m cnnexp.train` of a recipe as a user types it (its output to a log, not a
    terminal): wall time, and what it recorded."""
    out = Path(tempfile.mkdtemp(dir=workdir))
    rc, seconds = cli([*overrides, f"paths.output_dir={out}"], workdir)
    results = record_of(out) if rc == 0 else {}
    return {"wall_s": seconds, "train_s": results.get("train_s"), "test_acc": results.get("test_acc"),
            "peak_mb": PEAK_MB["last"], "time_to": results.get("time_to") or {}}


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def spread(values: List[float], scale: float = 1.0, digits: int = 1) -> str:
    """mean ± standard deviation (n)."""
    if not values:
        return "—"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{scale * statistics.mean(values):.{digits}f} ± {scale * sd:.{digits}f} (n={len(values)})"
