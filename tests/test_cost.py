"""Cost before the run: the calibration cache (measured for real, tiny), the estimate the shape check
prints without torch, and a sweep's total and its jobs' ETAs."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.helpers import PROJECT, QUICK, TINY_CALIBRATION, cli, keep, run_env

pytestmark = pytest.mark.xdist_group("test_cost")  # the calibrated cache is measured once, on one worker
TINY = TINY_CALIBRATION


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """XDG_CACHE_HOME holding this machine's calibration, measured with TINY probes: this module's own,
    for its tests change it (the `calibrated` one is the whole session's)."""
    from cnnexp.cost.calibration import calibrate

    folder = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_CACHE_HOME", str(folder))
        keep(calibrate(force=True, **TINY))  # measured busy or not, never again by its runs
    return folder


def test_calibration_is_cached_and_measured_again_for_another_machine(cache, monkeypatch):
    from cnnexp.cost import estimate as cost
    from cnnexp.cost.calibration import calibrate

    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    path = cost.cache_file()
    assert path == cache / "cnnexp" / "calibration.json"
    written = json.loads(path.read_text())
    assert written["key"] == cost.machine_key()
    rates = written["devices"]["cpu"]
    assert set(rates) == {"fp32-nchw", "fp32-cl", "bf16-nchw", "bf16-cl"}
    assert all(r["train"]["per_batch"] > 0 for r in rates.values())  # at least Lightning's per-step allowance
    assert cost.read_calibration() == written
    assert calibrate(**TINY) == written  # read, not measured again

    written["key"]["torch"] = "0.0"  # what another torch (or CPU, or accelerator) left in the cache
    written["measured_unix"] = 0
    path.write_text(json.dumps(written))
    assert cost.read_calibration() is None
    again = calibrate(**TINY)
    assert again["key"] == cost.machine_key() and again["measured_unix"] > 0
    assert json.loads(path.read_text()) == again
    keep(again)  # the module's later runs estimate with it, as measured, busy or not


def test_shapes_prints_the_estimate_without_torch(cache, tmp_path):
    env = {"XDG_CACHE_HOME": str(cache)}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "cnnexp.shapes", "experiment=speedrun", QUICK[0]],
                          cwd=PROJECT, capture_output=True, text=True, env=run_env(env))
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert not any(re.match(r"(torch|lightning)\b", m) for m in imported)
    line = " ".join(proc.stdout.split("\ncost: ")[-1].split())  # folded to fit 100 columns
    assert all(len(l) <= 100 for l in proc.stdout.splitlines()), proc.stdout
    line = "cost: " + line
    assert re.fullmatch(r"cost: ~\S+ (s|min|h) per epoch, ~\S+ (s|min|h) for 2 epochs and the test \(cpu, bf16-cl; .*\)(; the machine is busy now .*)?", line), line

    empty = cli("shapes", "experiment=speedrun", QUICK[0], env={"XDG_CACHE_HOME": str(tmp_path)})
    assert empty.returncode == 0
    assert "not calibrated yet" in empty.stdout.splitlines()[-1] and "calibrate=true" in empty.stdout
    assert not (tmp_path / "cnnexp").exists()  # the shape check only reads


def test_a_busy_machine_is_named_beside_an_estimate_measured_quiet():
    from cnnexp.cost.estimate import busy_note

    assert busy_note({"busy": False}, 1.5, 2) == ""
    assert busy_note({"busy": True}, 6.0, 2) == ""  # measured busy: its rates already run long
    assert busy_note({"busy": False}, 6.04, 2) == "; the machine is busy now (load 6.0 on 2 cores): expect it to take longer"


def test_a_calibration_measured_busy_still_warns_when_the_load_now_is_higher(tmp_path):
    """Issue #42: a calibration cached at load 2.5 made every later estimate skip the note, even at
    load 20 (estimates 10× low). Its cache file, as a busy calibration writes it, by hand."""
    from cnnexp.cost.estimate import busy_note, machine_key, read_calibration

    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"key": machine_key(), "measured_unix": 1, "busy": True, "load": 2.5,
                                "measure_s": 3.0, "devices": {}}))
    seen = read_calibration(path)
    assert busy_note(seen, 2.8, 2) == "", "about the load it was measured at: its rates already run long"
    assert busy_note(seen, 20.0, 2) == ("; the machine is busier now than when it was calibrated "
                                         "(load 20.0 on 2 cores, 2.5 then): expect it to take longer")
    assert busy_note(seen, 1.5, 2) == "", "a quiet machine: no note"
    assert busy_note({**seen, "load": None}, 20.0, 2) == "", "a cache from before the load was recorded"


def test_sweep_etas_keep_the_unit_of_the_sweeps_total():
    from cnnexp.core.console import duration, unit_of

    total = unit_of(600.0)
    assert [duration(s, total) for s in (516.0, 102.0, 88.0, 4.1)] == ["8.6 min", "1.7 min", "1.5 min", "0.1 min"]
    assert duration(88.0) == "88 s" and duration(102.0) == "1.7 min", "a single figure keeps the unit that suits it"


@pytest.mark.slow  # a 16 s sweep; test-all runs it
def test_a_sweep_says_its_total_and_each_job_its_eta(cache, tmp_path):
    quick = [o for o in QUICK if not o.startswith("callbacks.progress_bar_refresh=")]  # piped: a line per epoch
    proc = cli("train", "-m", "model.kernel_size=3,5", *quick, "trainer.max_epochs=1", "trainer.limit_train_batches=4",
               "test_after_fit=false", f"paths.output_dir={tmp_path}", env={"XDG_CACHE_HOME": str(cache)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    assert re.search(r"sweep: 2 runs, ~\S+ (s|min|h) in all on this machine", text), text[-2000:]
    for n, name in ((1, "kernel_size=3"), (2, "kernel_size=5")):
        assert re.search(rf"\[{n}/2\] {name} — ETA \S+ (s|min|h) for the rest of the sweep", text), text[-2000:]
        assert re.search(rf"\] \[{n}/2\] {name}: epoch 0 \(1 of 1\): train/acc ", text), text[-2000:]  # whose epoch


def test_the_eta_scales_what_is_left_by_how_long_the_finished_jobs_took():
    """Each job takes 5× its estimate; the sweep's launch took 30 s before the first job began."""
    from cnnexp.core.console import remaining_seconds

    jobs, started = [2.0, 2.0, 4.0, 4.0], 0.0
    assert remaining_seconds(jobs, 0, {0: 30.0}, started, 30.0) == 12.0  # nothing measured: the estimate
    # the first job's 10 s against its 2 s: 5× for the 10 s still estimated, the launch not counted
    assert remaining_seconds(jobs, 1, {0: 30.0, 1: 40.0}, started, 40.0) == 50.0
    assert remaining_seconds(jobs, 2, {0: 30.0, 1: 40.0, 2: 50.0}, started, 50.0) == 40.0
    # a job skipped (ended ok in an earlier launch) never starts: the span covers its estimate too
    assert remaining_seconds([2.0, 0.0, 4.0], 2, {0: 30.0, 2: 40.0}, started, 40.0) == 20.0
    # jobs started in other processes (parallel, SLURM): the time since the sweep began
    assert remaining_seconds(jobs, 2, {2: 60.0}, started, 60.0) == 120.0
    # the first job paid the imports (10× its estimate), the rest 2×: once they are timed, the
    # ETA falls with each job instead of swinging with the first
    jobs, starts, etas = [1.0] * 6, {0: 0.0}, []
    for n, took in enumerate([10.0, 2.0, 2.0, 2.0, 2.0], 1):
        starts[n] = starts[n - 1] + took
        etas.append(remaining_seconds(jobs, n, dict(starts), 0.0, starts[n]))
    assert etas[1:] == [8.0, 6.0, 4.0, 2.0] and etas[0] == 50.0, etas


def test_a_resume_costs_the_epochs_left(quick_run, tmp_path, calibrated, monkeypatch):
    """The cost line before a resume counts the epochs still to train, not all of max_epochs."""
    import shutil

    from cnnexp.cost import estimate as cost
    from cnnexp.run.resume import epochs_done
    from cnnexp.config.settings import load
    from omegaconf import OmegaConf

    run = tmp_path / "run"
    shutil.copytree(quick_run[0], run)
    assert epochs_done(run) == 2 and epochs_done(tmp_path) == 0  # QUICK: 2 epochs; no metrics.csv
    settings = load(OmegaConf.load(run / "config.yaml"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(calibrated))  # the calibration the resume below reads
    whole, rest = (cost.estimate(settings, cost.read_calibration(), done) for done in (0, 2))
    assert rest.epochs == 0 and rest.done == 2 and rest.total_s < whole.total_s - 1.5 * whole.epoch_s
    proc = cli("train", f"resume={run}", "trainer.max_epochs=3", "trainer.limit_train_batches=3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(r"cost: ~\S+ \S+ per epoch, ~\S+ \S+ for the 1 epoch left of 3 and the test "
                     r"\(2 trained before this resume; ", " ".join((proc.stdout + proc.stderr).split())), \
        proc.stdout[-2000:]


@pytest.mark.parametrize("bad", ["strings", "negative", "nan", "devices a list", "a pipe", "huge"])
def test_a_bad_calibration_cache_is_ignored_with_a_note_never_a_crash_or_a_hang(tmp_path, bad, caplog):
    """hostile2 B5–B10: the cache is a file the product reads, read as a record is: a pipe hung
    `shapes`, string rates ended in MemoryError, negative or NaN ones printed negative estimates."""
    import os

    from cnnexp.cost import estimate as cost

    path = tmp_path / "calibration.json"
    rates = {"per_batch": 0.01, "per_mac": 1e-10, "per_value": 1e-9}
    value = {"strings": "x" * 9, "negative": -1.0, "nan": float("nan")}.get(bad, 1e-10)
    devices = [1] if bad == "devices a list" else {"cpu": {"fp32-cl": {"train": {**rates, "per_mac": value},
                                                                      "eval": rates}}}
    if bad == "a pipe":
        os.mkfifo(path)
    else:
        path.write_text(json.dumps({"key": cost.machine_key(), "busy": False, "devices": devices})
                        + (" " * cost.CACHE_LIMIT if bad == "huge" else ""))
    assert cost.read_calibration(path) is None
    assert f"{path}: ignored (" in caplog.text and "calibrate=true" in caplog.text
