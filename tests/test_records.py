"""What a run records is what happened: interrupted, diverged, moved and copied runs, duplicate
sweep values, out-of-memory, odd images and data files — each through the real CLI."""

from __future__ import annotations

import csv
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import PATIENCE_S, PROJECT, QUICK, SHORT, cli, finish, only_run_dir, run_env, start, wait_for_epoch

pytestmark = pytest.mark.usefixtures("calibrated")  # its tests start runs


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())  # strict JSON: a bare NaN would fail here


@pytest.mark.slow  # a training stopped by its console; test_faults keeps the signals in the default run
def test_a_console_closed_before_the_run_stops_it_as_sigpipe_would_recorded(tmp_path, shared_data):
    """`python -m cnnexp.train … | head`: the reader goes away; the run stops at its next batch and
    says so in results.json — not `failed` blaming a path, not a traceback per log line."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "cnnexp.train", *SHORT, f"paths.output_dir={out}"], cwd=PROJECT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=run_env())
    proc.stdout.close()  # before the first line is written: every write to stdout fails
    _, err = finish(proc)
    assert proc.returncode == 128 + signal.SIGPIPE, err[-3000:]
    assert "Traceback" not in err and "Logging error" not in err, err[-3000:]
    assert [line for line in err.splitlines() if line.startswith("cnnexp: ")] == [
        line for line in err.splitlines() if line.startswith("cnnexp: interrupted")], err[-3000:]
    record = results(only_run_dir(out))
    assert record["status"] == "interrupted" and "SIGPIPE" in record["reason"] and "test_acc" not in record


@pytest.mark.slow  # default run: tests/test_faults.py stops a run while testing and resumes it
def test_ctrl_c_records_interrupted_and_the_run_resumes(tmp_path, shared_data):
    out = tmp_path / "out"
    proc = start([*QUICK, "trainer.limit_train_batches=60"], out, pipe=True)  # 2 epochs, stopped in the second
    wait_for_epoch(out, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = finish(proc)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "cnnexp: interrupted" in err and "resume=" in err
    run_dir = only_run_dir(out)
    record = results(run_dir)
    assert record["status"] == "interrupted" and record["epochs"] == 1 and "test_acc" not in record
    again = cli("train", f"resume={run_dir}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert results(run_dir)["status"] == "ok" and results(run_dir)["epochs"] == 2
    assert [r["epoch"] for r in csv.DictReader((run_dir / "metrics.csv").open())] == ["0", "1"]


@pytest.mark.slow  # the sweep cells of tests/test_faults.py run in make test-all
def test_sigterm_on_a_sweep_records_every_run_and_writes_the_summary(tmp_path, shared_data):
    out = tmp_path / "out"
    proc = start(["-m", "model.pool=max,avg", *QUICK, "trainer.limit_train_batches=60"], out,
                 pipe=True)
    wait_for_epoch(out, proc, pattern="multirun/*/*/*/metrics.csv")
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = finish(proc)
    assert proc.returncode == 143 and "Traceback" not in err, err[-3000:]
    sweep = next((out / "multirun").glob("*/*"))
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [(r["run"], r["status"]) for r in rows] == [("pool=max", "interrupted")]


def test_a_diverging_run_stops_as_diverged_with_valid_json(tmp_path, shared_data):
    out = tmp_path / "out"
    proc = cli("train", *SHORT, "optimizer.lr=1e9", f"paths.output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = results(only_run_dir(out))
    assert record["status"] == "diverged" and record["diverged_step"] < 15
    assert "test_acc" not in record, "no test result for a network that diverged"


@pytest.mark.slow
def test_duplicate_sweep_values_run_once(tmp_path, shared_data):
    out = tmp_path / "out"
    proc = cli("train", "-m", "model.kernel_size=3,5,3", *SHORT, "trainer.limit_train_batches=3",
               "test_after_fit=false", f"paths.output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = next((out / "multirun").glob("*/*"))
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))) == \
        ["kernel_size=3", "kernel_size=5"]
    assert "duplicate values dropped" in proc.stderr + proc.stdout


@pytest.mark.slow  # resuming is in the default run through test_ctrl_c_… and the fault tests
def test_a_moved_run_resumes_from_its_new_place(tmp_path, shared_data):
    out = tmp_path / "out"
    first = cli("train", *SHORT, f"paths.output_dir={out}")
    assert first.returncode == 0, first.stderr[-3000:]
    moved = tmp_path / "elsewhere" / "my-run"
    moved.parent.mkdir()
    shutil.move(str(only_run_dir(out)), moved)
    again = cli("train", f"resume={moved}", "trainer.max_epochs=2")
    assert again.returncode == 0, again.stderr[-3000:]
    record = results(moved)
    assert record["status"] == "ok" and record["epochs"] == 2 and record["tested_checkpoint"] == "best.ckpt"
    assert not any(out.rglob("*.ckpt")), "nothing is written where the run used to be"


@pytest.mark.slow
def test_a_copied_run_tests_its_own_checkpoint(tmp_path, shared_data):
    out = tmp_path / "out"
    assert cli("train", *SHORT, f"paths.output_dir={out}").returncode == 0
    original = only_run_dir(out)
    before = {p: p.stat().st_mtime_ns for p in original.rglob("*") if p.is_file()}
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    again = cli("train", f"resume={copy}", "trainer.max_epochs=2")
    assert again.returncode == 0, again.stderr[-3000:]
    record = json.loads((copy / "results.json").read_text())
    assert record["status"] == "ok" and record["epochs"] == 2 and (copy / "checkpoints" / record["tested_checkpoint"]).is_file()
    assert f"— run folder {copy}" in again.stderr + again.stdout, "the copy trained and tested in its own folder"
    assert {p: p.stat().st_mtime_ns for p in original.rglob("*") if p.is_file()} == before


@pytest.mark.slow  # a training to its memory limit; test-all runs it
def test_out_of_memory_is_one_line(tmp_path, shared_data):
    """Under a 6 GiB address-space limit, three blocks of 4,096 channels cannot allocate."""
    limit = 6 * 2**30
    proc = subprocess.run(
        [sys.executable, "-m", "cnnexp.train", *SHORT, *(f"model.blocks.{i}.channels=4096" for i in range(3)),
         f"paths.output_dir={tmp_path / 'out'}"], cwd=PROJECT, capture_output=True, text=True, timeout=PATIENCE_S, env=run_env(),
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [l for l in proc.stderr.splitlines() if l.startswith("cnnexp: error:")]
    assert len(errors) == 1 and "ran out of memory" in errors[0] and "data.batch_size=" in errors[0]
    assert results(only_run_dir(tmp_path / "out"))["status"] == "failed"


def test_predict_scales_16_bit_images_and_finds_no_digit_in_a_blank_one(quick_run, shared_data, tmp_path):
    from cnnexp.data.mnist import load_split

    run_dir, _ = quick_run
    images, labels = load_split(shared_data, train=False)
    as8 = Image.fromarray(images[0, 0].numpy())
    as8.save(tmp_path / "digit8.png")
    Image.fromarray(images[0, 0].numpy().astype(np.uint16) * 257).save(tmp_path / "digit16.png")
    assert Image.open(tmp_path / "digit16.png").mode.startswith("I")
    Image.new("L", (40, 40), 255).save(tmp_path / "blank.png")
    proc = cli("predict", f"run={run_dir}", f"images={tmp_path}", "json=true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = {Path(r["file"]).name: r for r in json.loads(proc.stdout)}
    assert got["digit16.png"]["digit"] == got["digit8.png"]["digit"]
    assert got["digit16.png"]["top"] == got["digit8.png"]["top"], "16-bit is the same picture, not clipped"
    assert got["blank.png"]["digit"] is None and "no digit" in got["blank.png"]["note"]


def test_checkpoints_are_staged_inside_the_run_folder(quick_run):
    from cnnexp.callbacks.checkpoint import InFolderCheckpointIO

    run_dir, proc = quick_run
    staged = [p for p in run_dir.rglob("*.part")]
    assert not staged, staged
    import torch

    target = run_dir.parent / "io-check" / "last.ckpt"
    real_mkstemp = __import__("tempfile").mkstemp
    seen = []

    def watching_mkstemp(*args, **kwargs):  # records where the staging file goes; still creates it
        fd, name = real_mkstemp(*args, **kwargs)
        seen.append(Path(name).parent)
        return fd, name

    import tempfile

    tempfile.mkstemp = watching_mkstemp
    try:
        InFolderCheckpointIO().save_checkpoint({"w": torch.ones(3)}, target)
    finally:
        tempfile.mkstemp = real_mkstemp
    assert seen == [target.parent] and torch.load(target)["w"].sum() == 3
    shutil.rmtree(target.parent)
