"""Records that hold under every fault (docs/records.md): a run, a sweep and an extending resume,
each stopped by a real signal in a phase told by watching its files, and a read-only or full
output folder. After each: `cnnexp.check` finds nothing but what the fault itself leaves (a
SIGKILLed run is dead, and may leave the `.part` of the write it cut short: findings until the
resume), the user saw one cnnexp line and no traceback, and resuming reaches a final record with
each epoch once, which `cnnexp.check` passes."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers import QUICK, cli, finish, only_run_dir, start, wait_for_epoch, wait_until, tmpfs

pytestmark = [pytest.mark.xdist_group("test_faults"),  # its module fixtures are built once, on one worker
              pytest.mark.usefixtures("calibrated")]  # its tests start runs

# a run whose phases are long enough to be hit: epochs of 30 batches, a test of 20
BASE = [*QUICK, "trainer.max_epochs=2", "trainer.limit_train_batches=30", "trainer.limit_test_batches=20",
        "logger.tensorboard=false"]
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def epochs_in_csv(run_dir: Path) -> list:
    return [int(r["epoch"]) for r in csv.DictReader((run_dir / "metrics.csv").open())]


def checked(folder: Path, killed: bool = False) -> str:
    """`cnnexp.check` passes; `killed`: its only findings are what a SIGKILL leaves — a dead run
    (with how to go on) and the temporary file of a write it cut short — and it exits 1 for them."""
    proc = cli("check", str(folder))
    found = proc.stdout.splitlines()
    if killed and proc.returncode == 1:
        assert all(": dead —" in line and "resume=" in line or "unfinished temporary file" in line
                   for line in found), proc.stdout + proc.stderr
        assert any(": dead —" in line for line in found) and "ok —" not in proc.stdout
        return proc.stdout
    assert proc.returncode == 0 and "ok —" in found[-1], proc.stdout + proc.stderr
    return proc.stdout


def one_cnnexp_line(err: str) -> str:
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("cnnexp:")]
    assert len(lines) == 1, err[-3000:]
    return lines[0]


def in_phase(out: Path, proc: subprocess.Popen, phase: str, pattern: str, epoch_rows: int = 2) -> None:
    """Return once the run under `out` (its metrics.csv/train.log matching `pattern`) is in `phase`:
    told by its files, never by how long a phase lasts on this machine."""
    folder = lambda: next(iter(out.glob(pattern)), None)  # noqa: E731
    if phase == "epoch":  # into the epoch after the first one finished and saved
        wait_for_epoch(out, proc, f"{pattern}/metrics.csv", rows=epoch_rows, pause=0.3)
    elif phase == "validation":  # the epoch after the saved one: one training batch, then a long validation
        wait_for_epoch(out, proc, f"{pattern}/metrics.csv", rows=epoch_rows, pause=0.0)  # (its settings: PHASE_ARGS)
    elif phase == "checkpoint":  # a checkpoint's staging file exists, after a first whole one to resume from
        wait_for_epoch(out, proc, f"{pattern}/metrics.csv", rows=epoch_rows, pause=0.0)
        wait_until(lambda: any((folder() / "checkpoints").glob(".*.part")), "a checkpoint write", proc, poll=0.002)
    elif phase == "test":  # the best checkpoint is being tested (a resumed run's log holds earlier tests)
        tests = lambda: (folder() / "train.log").read_text().count("testing best.ckpt") \
            if folder() is not None and (folder() / "train.log").is_file() else 0  # noqa: E731
        before = tests()
        wait_until(lambda: tests() > before, "the test", proc, poll=0.02)
    else:
        raise ValueError(phase)


# Settings that make a phase long enough to be hit, whatever the machine's speed: in "validation",
# an epoch is one training batch and 80 small validation batches (2,560 images validated for 128
# trained: ~95 % of the epoch's time, measured), so the signal sent as the epoch starts (its
# predecessor saved) falls in validation.
PHASE_ARGS = {"validation": ["trainer.limit_train_batches=1", "trainer.limit_val_batches=80", "data.eval_batch_size=32"]}


def faulted(args, out: Path, phase: str, sig: str, pattern: str = "*/*", epoch_rows: int = 2):
    """Start `python -m cnnexp.train args`, send `sig` to it in `phase`; (exit code, stderr)."""
    proc = start(args, out, pipe=True)
    try:
        in_phase(out, proc, phase, pattern, epoch_rows)
        os.killpg(proc.pid, SIGNALS[sig])
        _, err = finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, err


def told(code: int, err: str, sig: str) -> None:
    """What the user saw: a killed process says nothing; a stopped one one line."""
    if sig == "SIGKILL":
        assert code == -signal.SIGKILL
        return
    assert code == 128 + SIGNALS[sig], err[-3000:]  # 130 for SIGINT, 143 for SIGTERM
    assert "interrupted" in one_cnnexp_line(err)


def resumed_to_the_end(run_dir: Path, epochs: int) -> dict:
    proc = cli("train", f"resume={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = results(run_dir)
    assert record["status"] == "ok" and record["epochs"] == epochs
    assert epochs_in_csv(run_dir) == list(range(epochs)), "each epoch once"
    assert (run_dir / "checkpoints" / record["tested_checkpoint"]).is_file()
    checked(run_dir)
    return record


# ------------------------------------------------------------------ the default cells
@pytest.fixture(scope="module")
def stopped_in_test(tmp_path_factory, shared_data, calibrated):
    """One run stopped with SIGTERM while its best checkpoint is tested, then resumed: shared below."""
    out = tmp_path_factory.mktemp("stopped_in_test")
    code, err = faulted([*BASE, "trainer.max_epochs=1", "trainer.limit_train_batches=10"], out, "test", "SIGTERM")
    run_dir = only_run_dir(out)
    return run_dir, code, err, results(run_dir), cli("check", str(run_dir)).stdout


def test_sigterm_while_testing_is_recorded_interrupted(stopped_in_test):
    run_dir, code, err, record, report = stopped_in_test
    told(code, err, "SIGTERM")
    assert record["status"] == "interrupted" and "testing" in record["reason"] and "test_acc" not in record
    assert "ok —" in report and not (run_dir / ".cnnexp.lock").exists(), "the lock goes with the run"
    final = resumed_to_the_end(run_dir, 1)
    assert "test_acc" in final
    assert final["seconds_before_resume"] == record["seconds"] < final["seconds"], "the run's time counts both launches"


@pytest.mark.slow  # three processes that train: the matrix's extension cells ride on it
def test_an_interrupted_extension_leaves_a_record_of_what_is_on_disk(stopped_in_test, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_in_test[0], run_dir)
    if results(run_dir)["status"] != "ok":
        assert cli("train", f"resume={run_dir}").returncode == 0
    finished = results(run_dir)
    proc = start([f"resume={run_dir}", "trainer.max_epochs=4"], tmp_path / "unused", pipe=True)
    try:
        wait_for_epoch(run_dir, proc, "metrics.csv", rows=3, pause=0.3)  # epoch 1 of the extension on disk
        os.killpg(proc.pid, signal.SIGINT)
        _, err = finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    told(proc.returncode, err, "SIGINT")
    record = results(run_dir)
    assert record["status"] == "interrupted", "the checkpoints are the extension's now: so is the record"
    assert record["extends"]["test_acc"] == finished["test_acc"], "what it extended is kept"
    assert "test_acc" not in record and record["epochs"] >= 2
    checked(run_dir)
    resumed_to_the_end(run_dir, 4)


def test_check_tells_a_dead_run_from_a_live_one(stopped_in_test, tmp_path):
    from cnnexp.core.locks import FolderLock

    run_dir = tmp_path / "run"
    shutil.copytree(stopped_in_test[0], run_dir)
    record = results(run_dir)
    (run_dir / "results.json").write_text(json.dumps({**record, "status": "running"}))
    (run_dir / ".cnnexp.lock").write_text("999999")  # as a SIGKILLed run leaves it: nobody holds it
    dead = cli("check", str(run_dir))  # a finding: exit 1, and how to go on, with what is lost
    assert dead.returncode == 1 and ": dead —" in dead.stdout and f"resume={run_dir}" in dead.stdout
    assert "last.ckpt holds the 1 epoch finished" in dead.stdout and "ok —" not in dead.stdout
    held = FolderLock(run_dir)
    try:
        live = cli("check", str(run_dir))
    finally:
        held.release()
    assert live.returncode == 0 and ": dead —" not in live.stdout and ": running" in live.stdout, "alive: a note"
    assert not (run_dir / ".cnnexp.lock").exists()
    (run_dir / "checkpoints" / "last.ckpt").unlink()  # killed while its first checkpoint was written
    (run_dir / ".cnnexp.lock").write_text("999999")
    first = cli("check", str(run_dir))
    assert first.returncode == 1 and ": dead —" in first.stdout and "run it again" in first.stdout
    assert "resume=" not in first.stdout


def test_check_finds_broken_records(stopped_in_test, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_in_test[0], run_dir)
    (run_dir / "config.yaml").write_text((run_dir / "config.yaml").read_text() + "secret: ${oc.env:HOME}\n")
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    (run_dir / "metrics.csv").write_text("\n".join(rows + rows[1:]) + "\n")  # an epoch twice
    proc = cli("check", str(run_dir))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "interpolation" in proc.stdout and "each epoch once" in proc.stdout
    resumed = cli("train", f"resume={run_dir}")
    assert resumed.returncode == 2 and "interpolation" in one_cnnexp_line(resumed.stderr), "data, not resolved"
    assert "${oc.env:HOME}" in (run_dir / "config.yaml").read_text()
    usage = [cli("check"), cli("check", "--help"), cli("check", str(tmp_path / "absent"))]
    assert [p.returncode for p in usage] == [2, 0, 2] and "usage" in usage[1].stdout


def test_check_reports_each_broken_launch_record(tmp_path):
    """A sweep whose multirun.yaml and first-launch copy are both corrupt: one finding each (the
    second used to hide behind a `differs` line); a sound copy makes the difference the finding."""
    from cnnexp.check import folder_findings as check
    from cnnexp.records.folder import FIRST_SWEEP_CONFIG as FIRST_RECORD

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra: [unclosed\n  - {")
    (sweep / FIRST_RECORD).write_text("hydra: {{{\n")
    findings, _ = check(sweep)
    assert len(findings) == 2 and all("not readable YAML" in f for f in findings), findings
    assert {Path(f.split(":")[0]).name for f in findings} == {"multirun.yaml", FIRST_RECORD}
    (sweep / FIRST_RECORD).write_text("hydra: {}\n")
    findings, _ = check(sweep)
    assert len(findings) == 2 and "not readable" in findings[0] and "differs" in findings[1], findings


def test_training_into_another_runs_folder_is_refused(stopped_in_test, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_in_test[0], run_dir)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    proc = cli("train", *QUICK, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 2 and f"resume={run_dir}" in one_cnnexp_line(proc.stderr)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    proc = cli("train", *QUICK, f"hydra.run.dir={a_file}")
    assert proc.returncode == 2 and "is not a folder" in one_cnnexp_line(proc.stderr)
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_written_files_share_one_mode(stopped_in_test):
    run_dir = stopped_in_test[0]
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in [*run_dir.glob("*"), *run_dir.glob("checkpoints/*")]
             if p.is_file()}
    assert set(modes.values()) == {0o666 & ~umask}, modes


# ------------------------------------------------------------------ the whole matrix (make test-all)
PHASES = ["epoch", "validation", "checkpoint", "test"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", list(SIGNALS))
@pytest.mark.parametrize("phase", PHASES)
def test_a_faulted_run_resumes_to_its_record(tmp_path, shared_data, phase, sig):
    out = tmp_path / "out"
    code, err = faulted([*BASE, *PHASE_ARGS.get(phase, [])], out, phase, sig)
    told(code, err, sig)
    run_dir = only_run_dir(out)
    assert not list(run_dir.rglob("Traceback")) and results(run_dir)["status"] in ("running", "interrupted")
    checked(run_dir, killed=sig == "SIGKILL")
    resumed_to_the_end(run_dir, 2)
    assert not list(run_dir.rglob(".*.part")), "the resume removed what the killed write left"


@pytest.mark.slow
@pytest.mark.parametrize("sig", list(SIGNALS))
@pytest.mark.parametrize("phase", PHASES)
def test_a_faulted_extension_resumes_to_its_record(tmp_path, shared_data, phase, sig):
    out = tmp_path / "out"
    first = cli("train", *BASE, *PHASE_ARGS.get(phase, []), "trainer.max_epochs=1", f"paths.output_dir={out}")
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = only_run_dir(out)
    code, err = faulted([f"resume={run_dir}", "trainer.max_epochs=3"], out, phase, sig, epoch_rows=3)  # its own epoch
    told(code, err, sig)
    checked(run_dir, killed=sig == "SIGKILL")
    record = results(run_dir)
    if record["status"] == "ok":  # an extension that trained nothing yet leaves the finished record
        assert record["epochs"] == 1
    for name in ("best.ckpt", "last.ckpt"):
        assert (run_dir / "checkpoints" / name).is_file()
    resumed_to_the_end(run_dir, 3)


@pytest.mark.slow
@pytest.mark.parametrize("sig", list(SIGNALS))
@pytest.mark.parametrize("phase", ["epoch", "test"])
def test_a_faulted_sweep_resumes_twice_to_its_records(tmp_path, shared_data, phase, sig):
    out = tmp_path / "out"
    args = ["-m", "model.pool=max,avg", *BASE]
    code, err = faulted(args, out, phase, sig, pattern="multirun/*/*/pool=max")
    if sig != "SIGKILL":
        assert code == 128 + SIGNALS[sig] and "interrupted" in one_cnnexp_line(err), err[-3000:]
    sweep = next((out / "multirun").glob("*/*"))
    first = (sweep / "multirun.yaml").read_bytes()
    checked(sweep, killed=sig == "SIGKILL")
    for _ in range(2):  # a resumed sweep resumes again, and multirun.yaml stays the first launch's
        proc = cli("train", "-m", f"resume={sweep}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert (sweep / "multirun.yaml").read_bytes() == first
    for name in ("pool=max", "pool=avg"):
        record = results(sweep / name)
        assert record["status"] == "ok" and epochs_in_csv(sweep / name) == [0, 1]
    checked(sweep)
    assert not (sweep / ".cnnexp.lock").exists()


# ------------------------------------------------------------------ a disk that refuses
@pytest.fixture
def small_disk(tmp_path):
    """A 40 MB tmpfs (the tests run as root); skipped with the reason where mount is refused."""
    with tmpfs(tmp_path / "disk", "size=40m") as mount:
        yield mount


@pytest.mark.slow
def test_a_full_or_read_only_disk_is_one_line_and_leaves_the_record(stopped_in_test, small_disk):
    run_dir = small_disk / "run"
    shutil.copytree(stopped_in_test[0], run_dir)
    if results(run_dir)["status"] != "ok":
        assert cli("train", f"resume={run_dir}").returncode == 0
    before = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    filler = small_disk / "filler"
    with filler.open("wb") as f:  # the disk full, as the extension starts
        try:
            while True:
                f.write(b"\0" * 2**20)
        except OSError:
            pass
    proc = cli("train", f"resume={run_dir}", "trainer.max_epochs=3")
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = one_cnnexp_line(proc.stderr)
    assert "No space left" in line or "disk is full" in line
    after = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after.get(Path("config.yaml")) == before[Path("config.yaml")]
    assert after.get(Path("metrics.csv")) == before[Path("metrics.csv")]
    assert results(run_dir)["status"] == "ok"
    filler.unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    proc = cli("train", f"resume={run_dir}", "trainer.max_epochs=3")
    assert proc.returncode == 2 and "read-only" in one_cnnexp_line(proc.stderr)
    proc = cli("train", *QUICK, f"paths.output_dir={small_disk / 'new'}")
    assert proc.returncode == 2 and str(small_disk) in one_cnnexp_line(proc.stderr)
    subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    checked(run_dir)


@pytest.mark.slow
def test_ctrl_c_as_the_record_appears_leaves_a_true_record_or_none(tmp_path):
    """SIGINT the moment results.json appears (while config.yaml and provenance are being written):
    either nothing is left and the console says so, or what is left passes the checker — never a
    results.json that says `running` for a run that stopped."""
    proc = start([*BASE], tmp_path, pipe=True)
    try:
        wait_until(lambda: list(tmp_path.glob("*/*/results.json")), "results.json", proc, poll=0.01)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-2000:]
    runs = [p for p in tmp_path.glob("*/*") if p.is_dir()]
    if "nothing was recorded" in err:
        assert runs == [], [sorted(q.name for q in p.iterdir()) for p in runs]
    else:
        assert results(only_run_dir(tmp_path))["status"] == "interrupted"
        checked(only_run_dir(tmp_path))
