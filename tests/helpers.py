"""What the tests share: where MNIST is, the short-run overrides, and the way a test starts a run
(`cli`, `start`) and finds what it wrote. A test that starts a run asks for the `calibrated`
fixture (conftest.py): the runs it starts read that session's calibration cache, never the user's."""

from __future__ import annotations

import contextlib
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


def keep(calibration: dict) -> None:
    """Cache a test session's measurement (in $XDG_CACHE_HOME) as quiet: one measured while the
    machine was busy would be measured again (the full probes, seconds each) by the first run that
    finds the machine quiet, and the estimates would change under the tests with the machine's load."""
    from cnnexp.cost.estimate import write_calibration

    write_calibration(calibration["devices"], calibration["measure_s"], busy=False)


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


# How long a test waits for a process or a file before it calls the process hung: a safety net
# only, never a measure of speed. A test waits on what the product makes observable (a file, a log
# line, a record); this deadline is reached only when that never comes, on a machine however loaded.
PATIENCE_S = 1800


def cli(module: str, *args: str, cwd: Path | None = None, timeout: float = PATIENCE_S, env: dict | None = None):
    """Run `python -m cnnexp.<module> args…` as a user would; returns the CompletedProcess."""
    command = [sys.executable, "-m", f"cnnexp.{module}", *args]
    try:
        return subprocess.run(command, cwd=cwd or PROJECT, capture_output=True, text=True, timeout=timeout,
                              env=run_env({"HYDRA_FULL_ERROR": "0", **(env or {})}))
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"`{' '.join(command)}` still ran after {timeout:.0f} s: hung (its output: "
                    f"{_tail(hung.stdout)} | {_tail(hung.stderr)})")


def _tail(text, n: int = 2000) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return (text or "")[-n:]


def start(args, out: Path, pipe: bool = False) -> subprocess.Popen:
    """`python -m cnnexp.train args` in its own process group, so a test can signal it."""
    stream = subprocess.PIPE if pipe else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "cnnexp.train", *args, f"paths.output_dir={out}"], cwd=PROJECT,
                            stdout=stream, stderr=stream, text=True, start_new_session=True, env=run_env())


def finish(proc: subprocess.Popen, timeout: float = PATIENCE_S):
    """(stdout, stderr) of a process a test started (and signalled), once it ends; one still
    running at the safety net is hung: its group is killed and the test fails saying so."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # started by `start`: its own process group
        except ProcessLookupError:
            proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"`{' '.join(map(str, proc.args))}` still ran {timeout:.0f} s later: hung ({_tail(err)})")


def wait_until(condition, what: str, proc: subprocess.Popen | None = None, timeout: float = PATIENCE_S,
               poll: float = 0.1):
    """Poll `condition` until it returns something true, and return that: fails as soon as `proc`
    ends first, or at the safety net (both saying what was awaited) — never on a slow machine."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout:.0f} s: hung")
        time.sleep(poll)


def epoch_saved(run_dir: Path, rows: int) -> bool:
    """metrics.csv holds `rows` lines (header + epochs) and that epoch's last.ckpt is whole: the
    row comes first, then the checkpoint's `.part`, renamed into last.ckpt (newer than the row).
    Then a kill loses nothing of that epoch, however long the checkpoint took to write."""
    metrics, last = run_dir / "metrics.csv", run_dir / "checkpoints" / "last.ckpt"
    try:
        if len(metrics.read_text().splitlines()) < rows:
            return False
        return last.stat().st_mtime_ns >= metrics.stat().st_mtime_ns and \
            not any((run_dir / "checkpoints").glob(".*.part"))
    except FileNotFoundError:
        return False


def wait_for_epoch(out: Path, proc: subprocess.Popen, pattern: str = "*/*/metrics.csv", rows: int = 2,
                   pause: float = 0.3, timeout: float = PATIENCE_S) -> None:
    """Until the run whose metrics.csv matches `pattern` has `rows` lines (header + epochs) and
    that epoch's checkpoint on disk, then `pause` seconds into the next epoch; fails if the run ends first."""
    def saved():
        return any(epoch_saved(found.parent, rows) for found in out.glob(pattern))

    wait_until(saved, f"an epoch and its checkpoint ({out}/{pattern}: {rows} lines)", proc, timeout)
    time.sleep(pause)
    assert proc.poll() is None, "the run ended before it could be signalled"


def killed_after_epoch(args, out: Path, pattern: str) -> None:
    """Start `python -m cnnexp.train args`, SIGKILL its whole process group once the run whose
    metrics.csv matches `pattern` has finished an epoch (and saved it), as a power cut or OOM killer would."""
    proc = start(args, out)
    try:
        wait_for_epoch(out, proc, pattern)
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


@contextlib.contextmanager
def tmpfs(folder: Path, options: str):
    """A small tmpfs mounted at `folder` (e.g. "size=20m" or "size=4m,ro": the tests run as root, so
    chmod would not stop a write), unmounted after; the test is skipped, with why, where mount is refused."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"a tmpfs could not be mounted ({done.stderr.strip()[:120]}); needs root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def in_process(main, args, capsys) -> tuple:
    """An entry point's main(args) in this process, as its user sees it: (exit code, stdout, stderr).
    It starts and ends as a fresh process would: reading a handed folder marks the process
    (config.own_network), so the mark is cleared around it."""
    from cnnexp.config.own_network import reset

    reset()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code
    finally:
        reset()
    out, err = capsys.readouterr()
    return code, out, err

