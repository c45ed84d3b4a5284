"""Through a real SLURM scheduler: a one-node cluster (scripts/local-slurm.sh) on this machine,
jobs submitted with sbatch by Hydra's submitit launcher, DDP ranks started by srun, and a job
requeued mid-run that resumes its own folder. Skipped where SLURM is not installed."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from tests.helpers import PATIENCE_S, PROJECT, QUICK, SHORT, cli, epoch_saved, finish, start, sweep_dir, wait_until

SCRIPT = PROJECT / "scripts" / "local-slurm.sh"
pytestmark = [pytest.mark.skipif(
    shutil.which("slurmctld") is None or os.geteuid() != 0,
    reason="SLURM is not installed (as root: apt-get install -y slurm-wlm munge), or not root; "
           ".ci/run installs it so CI runs these"),
    pytest.mark.xdist_group("test_slurm"),  # its cluster is started once, on one worker
    pytest.mark.usefixtures("calibrated")]  # its tests start runs
SLURM = ["hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]


@pytest.fixture(scope="module")
def cluster():
    """The one-node cluster, started for these tests (and stopped after, unless it was running)."""
    state = os.environ.get("CNNEXP_SLURM_STATE", str(PROJECT / ".slurm"))
    was_running = subprocess.run([str(SCRIPT), "status"], capture_output=True).returncode == 0
    started = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=PATIENCE_S)
    assert started.returncode == 0, started.stdout + started.stderr
    conf = f"{state}/slurm.conf"
    with pytest.MonkeyPatch.context() as env:  # while this module's tests run: sbatch, squeue, scontrol find it
        env.setenv("SLURM_CONF", conf)
        yield conf
    if not was_running:
        subprocess.run([str(SCRIPT), "stop"], capture_output=True, timeout=60)


def scontrol_jobs(job: str, settle_s: float = PATIENCE_S) -> dict:
    """JobId → (JobState, Restarts) for a job or job array, from the controller's memory, once each
    task has ended: submitit reads a task's result as soon as it is pickled, while its process may still be exiting."""
    deadline = time.monotonic() + settle_s
    while True:
        text = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True, check=True).stdout
        jobs = {}
        for line in text.splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            jobs[fields.get("ArrayTaskId", fields["JobId"])] = (fields["JobState"], int(fields["Restarts"]))
        if not any(state in ("PENDING", "RUNNING", "COMPLETING") for state, _ in jobs.values()):
            return jobs
        assert time.monotonic() < deadline, f"job {job} still not ended after {settle_s:.0f} s: {jobs}"
        time.sleep(0.5)


def test_a_sweep_through_sbatch_records_a_python_failure_in_slurm_too(cluster, tmp_path, shared_data):
    proc = cli("train", "-m", *SLURM, "model.kernel_size=3,9", "model.stride=2", *QUICK, "trainer.max_epochs=1",
               "trainer.limit_train_batches=10", f"paths.output_dir={tmp_path}")
    assert proc.returncode == 1 and "1 of 2 runs refused before launch" in proc.stderr, proc.stderr[-3000:]
    folder = sweep_dir(tmp_path)
    ok, bad = (json.loads((folder / name / "results.json").read_text()) for name in ("kernel_size=3", "kernel_size=9"))
    assert ok["status"] == "ok" and ok["test_acc"] > 0.2 and bad["status"] == "failed" and "< 1" in bad["reason"]
    assert any((folder / "kernel_size=3").glob("events.out.tfevents.*")) and (folder / "kernel_size=3" / "metrics.csv").is_file()
    assert [r["status"] for r in csv.DictReader((folder / "summary.csv").open())] == ["ok", "refused"]
    [job] = [p.name for p in (folder / ".submitit").iterdir() if p.name.isdigit()]
    assert len(list((folder / ".submitit").glob("*/*_log.out"))) == 2, "submitit's logs under the sweep folder"
    assert scontrol_jobs(job) == {"0": ("COMPLETED", 0), "1": ("FAILED", 0)}, "the job of the failed run failed"


@pytest.mark.slow  # 35 s; DDP itself is in the default run (tests/test_speed.py), SLURM's sbatch path too (above)
def test_a_ddp_job_runs_its_ranks_through_srun(cluster, tmp_path, shared_data, quick_run):
    proc = cli("train", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", *SLURM, *QUICK,
               f"paths.output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run] = [d for d in sweep_dir(tmp_path).iterdir() if d.is_dir() and not d.name.startswith((".", "_"))]
    assert run.name.endswith("max_epochs=2,trainer=ddp"), "a sweep of one: named by what was set"
    results = json.loads((run / "results.json").read_text())
    single = json.loads((quick_run[0] / "results.json").read_text())  # the same QUICK run, one process
    assert results["status"] == "ok" and results["epochs"] == 2
    assert results["test_acc"] > 0.6 and abs(results["test_acc"] - single["test_acc"]) < 0.1, (results, single)
    log = (run / "train.log").read_text()
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1, MEMBER: 2/2" in log, "two ranks, from SLURM"
    submission = next((run.parent / ".submitit").glob("*/*_submission.sh")).read_text()
    assert "#SBATCH --ntasks-per-node=2" in submission, "one task per device"
    assert [r["epoch"] for r in csv.DictReader((run / "metrics.csv").open())] == ["0", "1"], "rank zero writes once"


@pytest.mark.slow  # flaky beside another xdist worker: the finished job may be purged before scontrol reads it
def test_a_requeued_job_resumes_its_own_folder(cluster, tmp_path, shared_data):
    proc = start(["hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1", *QUICK,
                  "trainer.max_epochs=3"], tmp_path, pipe=True)
    try:
        def saved():  # epoch 0 done and saved
            return next((m for m in tmp_path.glob("multirun/*/*/*,max_epochs=3/metrics.csv") if epoch_saved(m.parent, 2)),
                        None)
        metrics = wait_until(saved, "a job's first epoch saved", proc)
        first_epoch = metrics.read_text().splitlines()[1]  # its timings are this attempt's own
        [job] = [p.name for p in (metrics.parent.parent / ".submitit").iterdir() if p.name.isdigit()]
        subprocess.run(["scontrol", "requeue", job], check=True)
        out, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    results = json.loads((metrics.parent / "results.json").read_text())
    assert results["status"] == "ok" and results["epochs"] == 3
    assert [r["epoch"] for r in csv.DictReader(metrics.open())] == ["0", "1", "2"], "continued, each epoch once"
    assert list(scontrol_jobs(job).values()) == [("COMPLETED", 1)], "the same job, restarted once"
    assert metrics.read_text().splitlines()[1] == first_epoch, "epoch 0 was not trained again"


# ------------------------------------------------------------------ a search through SLURM
SEARCH = ["-m", "hydra/sweeper=optuna", *SLURM, *SHORT, "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler=grid",
          "optimizer.lr=choice(0.001,0.002,0.003)"]
RUNS = ["lr=0.001", "lr=0.002", "lr=0.003"]


def jobs_of(folder) -> list:
    """The SLURM jobs the sweep submitted, by their own folders (.submitit/<job id>/): read from
    the jobs' files, not from scontrol, which forgets a finished job when it is purged."""
    return sorted((folder / ".submitit").glob("[0-9]*"))


def trained(folder) -> list:
    from cnnexp.search.study import load_study
    from cnnexp.search.trials import skipped

    trials = [t for t in load_study(folder).get_trials() if not skipped(t)]
    assert all(t.state.name == "COMPLETE" for t in trials), [(t.number, t.state) for t in trials]
    return trials


@pytest.mark.slow
def test_a_search_submits_each_trial_as_its_own_job_when_a_slot_frees(cluster, tmp_path, shared_data):
    proc = cli("train", *SEARCH, "hydra.sweeper.n_jobs=2", f"paths.output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = sweep_dir(tmp_path)
    trials = trained(folder)
    assert sorted(t.user_attrs["run"] for t in trials) == RUNS
    jobs = jobs_of(folder)
    assert len(jobs) == 3, "one SLURM job a trial, not a job array"
    for job in jobs:
        assert (job / f"{job.name}_0_result.pkl").is_file(), f"job {job.name} ended with its result"
        assert "#SBATCH --array" not in (job / f"{job.name}_submission.sh").read_text()
    runs = sorted((t.user_attrs["launched"], t.user_attrs["ended"]) for t in trials)
    assert sum(1 for _, end in runs[:2] if end > runs[2][0]) < 2, "the third job was submitted into a free slot"
    assert "search: 3 trained" in proc.stdout and "3 ok" in proc.stdout


@pytest.mark.slow
def test_worker_jobs_on_slurm_train_the_study_together_and_one_summary_is_written(cluster, tmp_path, shared_data):
    """hydra.sweeper.workers=2: two SLURM jobs join the study and train its three trials between
    them, each once; the submitting process, the last worker out, writes the one summary."""
    proc = cli("train", *SEARCH, "hydra.sweeper.workers=2", f"paths.output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = sweep_dir(tmp_path)
    assert sorted(t.user_attrs["run"] for t in trained(folder)) == RUNS
    assert sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith((".", "_"))) == RUNS
    jobs = jobs_of(folder)
    assert len(jobs) == 2, "two worker jobs"
    for job in jobs:
        log = (job / f"{job.name}_0_log.out").read_text()
        assert "other workers still run this search; the last of them to end writes its summary" in log, log[-2000:]
        # the summary's study line (`search: 3 trained, …`), not the estimate a joining worker prints (`search: ~2.6 s …`)
        assert "(summary.csv, summary.png) — " not in log and not re.search(r"^search: \d", log, re.M), "no summary of its own"
    assert "search: 3 trained" in proc.stdout and "3 ok" in proc.stdout
