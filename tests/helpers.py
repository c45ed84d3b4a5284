"""What the tests share: where MNIST is, the short-run overrides, and the way a test starts a run
(`cli`, `start`) and finds what it wrote. A test that starts a run asks for the `calibrated`
fixture (conftest.py): the runs it starts read that session's calibration cache, never the user's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]


def _test_data() -> Path:
    """MNIST for the tests: CNNEXP_TEST_DATA, or ../shared/datasets beside the checkout (read-only);
    a user's clone has neither, so the project's own data/ folder, filled as `make train` fills it."""
    if "CNNEXP_TEST_DATA" in os.environ:
        return Path(os.environ["CNNEXP_TEST_DATA"])
    shared = PROJECT.parent / "shared" / "datasets"
    return shared if (shared / "MNIST" / "raw").is_dir() else PROJECT / "data"


SHARED_DATA = _test_data()

# A quick run: real MNIST, 2 epochs of a few batches, no progress bar.
QUICK = [
    f"data.root={SHARED_DATA}",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=40",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "callbacks.progress_bar_refresh=0",
]
# A short run: one epoch of 15 batches (each run of a sweep, a search's trials).
SHORT = [*QUICK, "trainer.max_epochs=1", "trainer.limit_train_batches=15"]

TINY_CALIBRATION = {"probes": [("speed", 8, 16), ("speed", 2, 2)], "rounds": 1}  # a real measurement, in a second

# The environment every run started by a test gets on top of os.environ; filled by the `calibrated` fixture.
_RUN_ENV: dict = {}


def use_calibration(cache: Path) -> None:
    """Runs started from now on read the calibration under `cache` (their XDG_CACHE_HOME)."""
    _RUN_ENV["XDG_CACHE_HOME"] = str(cache)


def run_env(extra: dict | None = None) -> dict:
    """The environment for a `python -m cnnexp.…` a test starts: os.environ, unbuffered, the session's
    calibration cache, then `extra`. Fails the test that starts a run without asking for `calibrated`
    (or giving a cache of its own)."""
    if "XDG_CACHE_HOME" not in {**_RUN_ENV, **(extra or {})}:
        pytest.fail("this test starts a run: ask for the `calibrated` fixture (the session's calibration cache)")
    return {**os.environ, "PYTHONUNBUFFERED": "1", **_RUN_ENV, **(extra or {})}


def cli(module: str, *args: str, cwd: Path | None = None, timeout: int = 300, env: dict | None = None):
    """Run `python -m cnnexp.<module> args…` as a user would; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", f"cnnexp.{module}", *args], cwd=cwd or PROJECT,
                          capture_output=True, text=True, timeout=timeout, env=run_env({"HYDRA_FULL_ERROR": "0", **(env or {})}))


def start(args, out: Path, pipe: bool = False) -> subprocess.Popen:
    """`python -m cnnexp.train args` in its own process group, so a test can signal it."""
    stream = subprocess.PIPE if pipe else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "cnnexp.train", *args, f"paths.output_dir={out}"], cwd=PROJECT,
                            stdout=stream, stderr=stream, text=True, start_new_session=True, env=run_env())


def wait_for_epoch(out: Path, proc: subprocess.Popen, pattern: str = "*/*/metrics.csv", rows: int = 2,
                   pause: float = 0.7, timeout: float = 300) -> None:
    """Until the metrics.csv matching `pattern` holds `rows` lines (header + epochs), then
    `pause` seconds into the next epoch; fails if the run ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(out.glob(pattern))
        if found and len(found[0].read_text().splitlines()) >= rows:
            time.sleep(pause)
            assert proc.poll() is None, "the run ended before it could be signalled"
            return
        time.sleep(0.1)
    raise AssertionError(f"no epoch finished before the deadline (exit {proc.poll()})")


def killed_after_epoch(args, out: Path, pattern: str) -> None:
    """Start `python -m cnnexp.train args`, SIGKILL its whole process group once the run whose
    metrics.csv matches `pattern` has finished an epoch, as a power cut or OOM killer would."""
    proc = start(args, out)
    try:
        wait_for_epoch(out, proc, pattern, pause=0.5)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()


def only_run_dir(output_dir: Path) -> Path:
    """The one run folder a single run wrote under paths.output_dir (<date>/<time>)."""
    runs = [p for p in output_dir.glob("*/*") if p.is_dir()]
    assert len(runs) == 1, f"expected one run folder under {output_dir}, found {runs}"
    return runs[0]


def sweep_dir(output_dir: Path) -> Path:
    """The one sweep folder a multirun wrote under paths.output_dir (multirun/<date>/<name>)."""
    found = list((output_dir / "multirun").glob("*/*"))
    assert len(found) == 1, found
    return found[0]
