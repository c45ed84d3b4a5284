"""A search that never waits and survives lost workers: trials started the moment a slot frees,
workers joining one study, heartbeats, a SIGKILLed worker's trial finished by another from its
last.ckpt, the study in a journal file or a real PostgreSQL, pruning under DDP."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from cnnexp.core.errors import RunError
from cnnexp.core.locks import FolderLock, WorkerLock, drop_turn, one_at_a_time
from cnnexp.search.loop import HEARTBEAT, Heartbeat
from cnnexp.search.study import StudyRefused, load_study, open_storage
from cnnexp.search.trials import skipped
from tests.helpers import PATIENCE_S, PROJECT, QUICK, cli, finish, start, sweep_dir, wait_for_epoch, wait_until

pytestmark = [pytest.mark.xdist_group("test_search_workers"),  # its module fixtures are built once, on one worker
              pytest.mark.usefixtures("calibrated")]  # most of its tests start runs

SEARCH = ["-m", "hydra/sweeper=optuna", *QUICK, "trainer.limit_train_batches=15"]


def run_folders(folder):
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith((".", "_")))  # not _sweep


# ------------------------------------------------------------------ locks and heartbeats, no training
def test_search_workers_share_the_folder_lock_that_a_grid_sweep_holds_alone(tmp_path):
    first = WorkerLock(tmp_path)
    assert first.alone()
    second = WorkerLock(tmp_path)  # a second worker joins
    assert not first.alone() and not second.alone()
    with pytest.raises(RunError, match="another cnnexp process"):
        FolderLock(tmp_path)  # a grid sweep (or its resume) is refused while workers run
    del first, second
    grid = FolderLock(tmp_path)
    with pytest.raises(RunError, match="not a search that workers can join"):
        WorkerLock(tmp_path)
    del grid
    assert WorkerLock(tmp_path).alone()


ENDING = """
import sys, time
from pathlib import Path
from cnnexp.core.locks import WorkerLock, last_out
folder = Path(sys.argv[1])
lock = WorkerLock(folder)
(folder / sys.argv[2]).write_text("joined")
while len(list(folder.glob("w*"))) < 3:  # all three hold the lock: end at once
    time.sleep(0.01)
with last_out(lock) as last:
    (folder / sys.argv[2]).write_text(str(last))
    time.sleep(0.3)  # the summary being written: the others wait their turn, and are not the last
lock.release()
"""


def test_of_workers_ending_at_once_exactly_one_is_the_last_out(tmp_path):
    """Three worker processes on one folder end at the same moment: one writes the summary."""
    workers = [subprocess.Popen([sys.executable, "-c", ENDING, str(tmp_path), f"w{i}"]) for i in range(3)]
    assert [w.wait(timeout=PATIENCE_S) for w in workers] == [0, 0, 0]
    assert sorted((tmp_path / f"w{i}").read_text() for i in range(3)) == ["False", "False", "True"]
    assert not (tmp_path / ".cnnexp.lock").exists(), "the last out removed the lock file"
    assert not (tmp_path / ".search.lock").exists(), "and the turn's file"
    FolderLock(tmp_path).release()  # and the folder is free


def test_a_turn_waited_for_on_the_removed_file_is_taken_on_a_new_one(tmp_path):
    """The last worker out removes .search.lock in its turn while a joining worker waits on that
    file; the joiner and one coming after it still take their turns one at a time."""
    inside, overlaps = [], []

    def turn(name):
        with one_at_a_time(tmp_path):
            overlaps.extend((other, name) for other in inside)
            inside.append(name)
            time.sleep(0.4)
            inside.remove(name)

    waiting = threading.Thread(target=turn, args=("joined",))
    with one_at_a_time(tmp_path):  # the last out, in its turn (a flock of its own open file: another locker)
        waiting.start()
        wait_until(lambda: blocked_on(tmp_path / ".search.lock"), "the joiner waiting on the file's flock")
        drop_turn(tmp_path)
    wait_until(lambda: "joined" in inside, "the joiner's turn (on the removed file, or a new one)")
    later = threading.Thread(target=turn, args=("later",))
    later.start()
    for thread in (waiting, later):
        thread.join(timeout=PATIENCE_S)
        assert not thread.is_alive(), "a turn never taken: hung"
    assert overlaps == [], "a turn on the removed file and one on its successor at once"


def blocked_on(path: Path) -> bool:
    """Whether a flock on `path` waits (the kernel's /proc/locks lists a waiter with `->`)."""
    inode = f":{path.stat().st_ino} "
    return any("->" in line and inode in line for line in Path("/proc/locks").read_text().splitlines())


def test_a_heartbeat_stamps_its_trial_until_the_trial_is_told(tmp_path):
    study = optuna.create_study(storage=open_storage(tmp_path, "sqlite"), study_name="cnnexp")
    trial = study.ask()
    beat = Heartbeat(study._storage, every=0.2, ends_when_told=True)
    beat.add(trial._trial_id)
    stamp = lambda: study._storage.get_trial(trial._trial_id).user_attrs[HEARTBEAT]  # noqa: E731
    first = stamp()
    wait_until(lambda: stamp() > first, "a second stamp while the trial runs")
    study.tell(trial, 1.0)
    wait_until(lambda: not beat.trial_ids, "the finished trial dropped (and the job's thread ended)")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_dashboard_serves_the_studys_trials(tmp_path):
    pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed (pip install 'cnnexp[dashboard]')")
    import urllib.request

    study = optuna.create_study(storage=open_storage(tmp_path, "sqlite"), study_name="cnnexp")
    for lr in (0.001, 0.003):
        study.enqueue_trial({"optimizer.lr": lr})
        trial = study.ask({"optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2)})
        study.tell(trial, 0.9 + lr)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "cnnexp.dashboard", str(tmp_path), f"port={port}"], cwd=PROJECT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def studies():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=30) as r:
                    return json.loads(r.read())["study_summaries"]
            except OSError:
                return None
        [listed] = wait_until(studies, f"dashboard on port {port}", server, poll=0.3)
        assert listed["study_name"] == "cnnexp"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{listed['study_id']}", timeout=30) as r:
            trials = json.loads(r.read())["trials"]
        assert sorted(t["params"][0]["param_internal_value"] for t in trials) == [0.001, 0.003]
    finally:
        server.terminate()
        server.wait(timeout=PATIENCE_S)


def test_the_dashboard_of_a_folder_without_a_study_is_one_line(tmp_path):
    proc = cli("dashboard", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not a search's sweep folder" in proc.stderr


# ------------------------------------------------------------------ PostgreSQL, for real
POSTGRES = PROJECT / "scripts" / "local-postgres.sh"


@pytest.fixture(scope="module")
def postgres():
    """The throw-away local cluster (scripts/local-postgres.sh), started for these tests."""
    import glob

    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        pytest.skip("PostgreSQL is not installed (as root: apt-get install -y postgresql); .ci/run installs it")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'cnnexp[postgres]')")
    import socket
    import tempfile

    # a cluster of its own, in /tmp (the postgres user cannot enter a private clone, e.g. under mktemp -d),
    # on a free port (a user's cluster may hold the default one)
    state = Path(tempfile.mkdtemp(prefix="cnnexp-postgres-"))
    state.chmod(0o755)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CNNEXP_POSTGRES_STATE": str(state), "CNNEXP_POSTGRES_PORT": str(port)}
    started = subprocess.run([str(POSTGRES), "start"], capture_output=True, text=True, timeout=PATIENCE_S, env=env)
    assert started.returncode == 0, started.stdout + started.stderr
    yield subprocess.run([str(POSTGRES), "url"], capture_output=True, text=True, check=True, env=env).stdout.strip()
    subprocess.run([str(POSTGRES), "stop"], capture_output=True, timeout=60, env=env)
    shutil.rmtree(state, ignore_errors=True)


def test_a_study_in_postgresql_is_found_through_the_sweep_folders_record(tmp_path, postgres):
    import uuid

    from cnnexp.search.study import STUDY_RECORD

    name = f"test-{uuid.uuid4().hex[:8]}"
    (tmp_path / STUDY_RECORD).write_text(json.dumps({"storage": postgres, "study_name": name}))
    study = optuna.create_study(storage=open_storage(tmp_path, postgres), study_name=name)
    trial = study.ask()
    Heartbeat(study._storage, every=60).add(trial._trial_id)
    [found] = load_study(tmp_path, named=postgres).get_trials()  # as a job or a joining worker finds it
    assert found.state == TrialState.RUNNING and found.user_attrs[HEARTBEAT] > 0
    with pytest.raises(StudyRefused, match="not opened on a folder's word"):
        load_study(tmp_path)  # the folder's record alone does not make a command connect to a database


@pytest.mark.slow
def test_a_search_keeps_its_study_in_postgresql(tmp_path, postgres, shared_data):
    proc = cli("train", *SEARCH, "hydra/launcher=parallel", "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=3",
               f"hydra.sweeper.storage={postgres}", "hydra.sweeper.sampler=grid", "trainer.max_epochs=1",
               "optimizer.lr=choice(0.001,0.002,0.003)", f"paths.output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = sweep_dir(tmp_path)
    assert json.loads((folder / "study.json").read_text())["storage"] == postgres
    assert not (folder / "study.db").exists()
    trials = [t for t in load_study(folder, named=postgres).get_trials() if not skipped(t)]
    assert sorted(t.user_attrs["run"] for t in trials) == run_folders(folder) == ["lr=0.001", "lr=0.002", "lr=0.003"]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert all(t.intermediate_values for t in trials), "each job reported to the database its launch named"
    assert "search: 3 trained" in proc.stdout
    refused = cli("summary", str(folder))  # the folder's word alone: no connection
    assert refused.returncode == 2 and "storage=URL" in refused.stderr and "Traceback" not in refused.stderr
    assert "search: 3 trained" in cli("summary", str(folder), f"storage={postgres}").stdout  # named: read
    resumed = cli("train", "-m", f"resume={folder}", f"hydra.sweeper.storage={postgres}")  # named again: it resumes
    assert resumed.returncode == 0 and "nothing to run" in resumed.stdout + resumed.stderr, resumed.stderr[-2000:]


# ------------------------------------------------------------------ steady state against batches
def launches(folder):
    """(launched, ended) of each trial that ran, in launch order."""
    trials = [t for t in load_study(folder).get_trials() if "launched" in t.user_attrs]
    return sorted((t.user_attrs["launched"], t.user_attrs["ended"]) for t in trials)


@pytest.mark.slow
@pytest.mark.parametrize("steady", [True, False])
def test_a_trial_starts_the_moment_a_slot_frees_or_waits_for_its_batch(tmp_path, shared_data, steady):
    """Two slots, trials of 1 and 5 epochs (grid, seeded: 5, 1, 1, 5): in steady state the third
    starts while the first still runs; in batches not before both of the first batch have ended."""
    proc = cli("train", *SEARCH, "hydra/launcher=parallel", "hydra.sweeper.n_jobs=2", "hydra.sweeper.sampler=grid",
               "hydra.sweeper.seed=1", f"hydra.sweeper.steady={str(steady).lower()}", "trainer.max_epochs=choice(1,5)",
               "optimizer.lr=choice(0.001,0.002)", f"paths.output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = launches(sweep_dir(tmp_path))
    assert len(runs) == 4
    for i, (launched, _) in enumerate(runs[2:], start=2):
        assert sum(1 for _, end in runs[:i] if end > launched) < 2, "started only into a free slot"
    # the seeded grid starts with 5 and 1 epochs: steady state starts the third while the 5-epoch one runs
    overlapped = any(end > launched for launched, _ in runs[2:] for _, end in runs[:2])
    assert overlapped == steady


@pytest.mark.slow
def test_a_trial_chosen_ahead_and_never_started_is_recorded_unstarted(tmp_path, shared_data):
    """Both slots busy, the next trial chosen ahead; Ctrl-C: that trial is told failed and
    `unstarted`, has no folder, and counts neither as trained nor toward n_trials."""
    proc = start([*SEARCH, "hydra/launcher=parallel", "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=4",
                  "hydra.sweeper.sampler=grid", "trainer.max_epochs=3", "optimizer.lr=choice(0.001,0.002,0.003,0.004)"],
                 tmp_path)
    try:
        def chosen_ahead():  # two trials training, the third chosen (checked, its heartbeat beating)
            found = list(tmp_path.glob("multirun/*/*/study.db"))
            if not found:
                return False
            try:
                trials = load_study(found[0].parent).get_trials(deepcopy=False)
            except KeyError:  # the file is there, the study not yet
                return False
            assert len(run_folders(found[0].parent)) <= 2, "a third trial started before the one chosen ahead was seen"
            return len(trials) == 3 and HEARTBEAT in trials[2].user_attrs and len(run_folders(found[0].parent)) == 2

        wait_until(chosen_ahead, "a trial chosen ahead while both slots train", proc, poll=0.5)
        os.killpg(proc.pid, signal.SIGINT)
        finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    folder = sweep_dir(tmp_path)
    trials = load_study(folder).get_trials()
    [ahead] = [t for t in trials if t.user_attrs.get("unstarted")]
    assert ahead.state == TrialState.FAIL and skipped(ahead) and "launched" not in ahead.user_attrs
    assert not (folder / ahead.user_attrs["run"]).exists(), "never started: no folder"
    assert len(run_folders(folder)) == 2


# ------------------------------------------------------------------ a worker lost, another finishes
# A's trial outlasts B's start-up (both slow down together on a loaded machine): epochs of 60 batches
LONG_TRIAL = ["trainer.limit_train_batches=60"]


@contextmanager
def joined(args, out: Path, pipe: bool = False):
    """Worker A starts the search `args` into `out`; once its first trial has ended an epoch, B
    joins with `-m resume=SWEEP` and starts a trial of its own. Yields (A, B, the sweep folder,
    A's trial folder); whichever of them still runs at the end is SIGKILLed."""
    a, b = start(args, out, pipe=pipe), None
    try:
        wait_for_epoch(out, a, "multirun/*/*/*/metrics.csv", pause=0)
        folder = sweep_dir(out)
        [first] = run_folders(folder)
        b = start(["-m", f"resume={folder}"], out, pipe=True)
        wait_until(lambda: len(run_folders(folder)) >= 2, "a second trial folder (B's)", b, poll=0.2)
        # A runs one trial at a time: the second folder is B's only while A's first trial still runs
        assert json.loads((folder / first / "results.json").read_text())["status"] == "running", \
            "A's trial ended before B joined: lengthen it (its epochs), not the wait"
        yield a, b, folder, first
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["journal"])
def test_a_killed_workers_trial_is_finished_by_the_other_from_its_checkpoint(tmp_path, shared_data, storage):
    """Worker A starts a grid of three; B joins with `-m resume=SWEEP`; A is SIGKILLed in its
    trial's second epoch. B notices the silent trial (heartbeat 1 s, grace 4 s), re-runs it from
    its last.ckpt in its own folder, and the study ends with three trials, each epoch once."""
    args = [*SEARCH, "hydra.sweeper.sampler=grid", "hydra.sweeper.seed=2", f"hydra.sweeper.storage={storage}",
            "hydra.sweeper.heartbeat_s=1", "hydra.sweeper.grace_s=4", "trainer.max_epochs=3", *LONG_TRIAL,
            "optimizer.lr=choice(0.001,0.002,0.003)"]
    with joined(args, tmp_path) as (a, b, folder, lost):
        assert len(run_folders(folder)) == 2, "B joined while A ran"
        os.killpg(a.pid, signal.SIGKILL)
        a.wait()
        out, err = finish(b)
    assert b.returncode == 0, err[-3000:]
    assert len(run_folders(folder)) == 3, "no setting twice, no folder twice"
    study = load_study(folder).get_trials()
    live = [t for t in study if not t.user_attrs.get("superseded") and not skipped(t)]  # (not asked-again settings)
    assert sorted(t.user_attrs["run"] for t in live) == run_folders(folder)
    assert all(t.state == TrialState.COMPLETE for t in live), [(t.number, t.state) for t in live]
    [stale] = [t for t in study if t.user_attrs.get("superseded")]
    assert stale.user_attrs["run"] == lost and "no heartbeat" in stale.user_attrs["lost"]
    [retry] = [t for t in live if t.user_attrs.get("retry_of") == stale.number]
    assert set(stale.intermediate_values.items()) <= set(retry.intermediate_values.items()), "what it reported stays"
    assert sorted(retry.intermediate_values) == [0, 1, 2]
    epochs = [r["epoch"] for r in csv.DictReader((folder / lost / "metrics.csv").open())]
    assert epochs == ["0", "1", "2"], "continued from its last.ckpt: each epoch once"
    assert json.loads((folder / lost / "results.json").read_text())["status"] == "ok"
    assert "re-run after their worker was lost" in out and "3 trained" in out, out[-2000:]


@pytest.mark.slow
def test_a_worker_stopped_by_ctrl_c_leaves_the_summary_to_the_last_out(tmp_path, shared_data):
    """A starts a search, B joins it; Ctrl-C to A's process group: A records its trial and ends
    without a summary, `check` still sees the search running (B shares its lock); B re-runs A's
    trial, ends last and writes the one summary, and no lock file is left."""
    args = [*SEARCH, "hydra.sweeper.sampler=grid", "hydra.sweeper.heartbeat_s=1", "hydra.sweeper.grace_s=4",
            "trainer.max_epochs=3", *LONG_TRIAL, "optimizer.lr=choice(0.001,0.002,0.003)"]
    with joined(args, tmp_path, pipe=True) as (a, b, folder, _):
        os.killpg(a.pid, signal.SIGINT)
        _, a_err = finish(a)
        running = cli("check", str(folder))
        assert b.poll() is None, "B ended before A's trial was re-run"
        assert not (folder / "summary.csv").exists(), "A was not the last out: no summary of its own"
        out, err = finish(b)
    assert a.returncode == 130 and "other workers of the search" in a_err, a_err[-2000:]
    assert "summary.csv lists" not in a_err
    assert running.returncode == 0 and f"{folder}: a search is running in it" in running.stdout, running.stdout
    assert b.returncode == 0, err[-3000:]
    summary = {r["run"]: r["status"] for r in csv.DictReader((folder / "summary.csv").open())}
    assert summary == {"lr=0.001": "ok", "lr=0.002": "ok", "lr=0.003": "ok"}
    assert not (folder / ".search.lock").exists() and not (folder / ".cnnexp.lock").exists()
    assert cli("check", str(folder)).returncode == 0


# ------------------------------------------------------------------ pruning under DDP
@pytest.mark.slow
def test_under_ddp_rank_zeros_pruning_decision_stops_every_rank_in_the_same_epoch(tmp_path, shared_data):
    from dataclasses import asdict

    from cnnexp.search.options import SearchOptions

    study = optuna.create_study(storage=open_storage(tmp_path, "sqlite"), study_name="cnnexp", direction="maximize")
    options = SearchOptions(n_trials=2, n_jobs=1, sampler="random", seed=None, direction="maximize", pruner="median",
                            pruner_startup_trials=1, max_rejected=10)
    study.set_user_attr("options", asdict(options))
    study.set_user_attr("monitor", "val/acc")
    best = study.ask()
    for epoch in range(4):
        best.report(0.99, epoch)
    study.tell(best, 0.99)
    trial = study.ask()
    trial.set_user_attr("run", "trial")
    (tmp_path / "trial").mkdir()
    proc = subprocess.run([sys.executable, str(PROJECT / "tests" / "ddp_pruned_trial.py"), str(shared_data), str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=PATIENCE_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / "trial" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1], "both ranks stopped in the same epoch, for the same reason"
    assert ranks[0]["epoch"] == 1 and "pruned after epoch 1 by the median pruner" in ranks[0]["pruned"]
    assert list(study._storage.get_trial(trial._trial_id).intermediate_values) == [0], "reported once, by rank 0"


# ------------------------------------------------------------------ worker jobs
@pytest.mark.slow
def test_worker_jobs_train_the_study_together(tmp_path, shared_data):
    """hydra.sweeper.workers=2 through submitit's local executor (the SLURM launcher's code path):
    two worker jobs join the study and train its three trials between them, each once."""
    proc = cli("train", *SEARCH, "hydra/launcher=local", "hydra.sweeper.workers=2", "hydra.sweeper.n_trials=3",
               "hydra.sweeper.sampler=grid", "trainer.max_epochs=1", "optimizer.lr=choice(0.001,0.002,0.003)",
               f"paths.output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = sweep_dir(tmp_path)
    trials = [t for t in load_study(folder, named=postgres).get_trials() if not skipped(t)]
    assert sorted(t.user_attrs["run"] for t in trials) == run_folders(folder) == ["lr=0.001", "lr=0.002", "lr=0.003"]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len(list((folder / ".submitit").glob("*/*_log.out"))) == 2, "two worker jobs"
    assert "search: 3 trained" in proc.stdout and "3 ok" in proc.stdout


@pytest.mark.slow
def test_ctrl_c_of_worker_jobs_writes_one_summary_and_leaves_no_lock(tmp_path, shared_data):
    """hydra.sweeper.workers=2 (submitit's local executor), Ctrl-C to the whole process group while
    both train: each worker records its trial, the last out writes the summary once — the job
    wrapper waits for its worker rather than killing it mid-summary — and no lock file is left."""
    proc = start([*SEARCH, "hydra/launcher=local", "hydra.sweeper.workers=2", "hydra.sweeper.sampler=grid",
                  "trainer.max_epochs=3", "optimizer.lr=choice(0.001,0.002,0.003)"], tmp_path, pipe=True)
    try:  # both workers are in a trial's first epoch
        wait_until(lambda: len(list(tmp_path.glob("multirun/*/*/*/metrics.csv"))) >= 2, "both workers' first epoch",
                   proc, poll=0.2)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = finish(proc)

        def group_ended():  # the workers outlive the submitting process by their summary
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return True
            return False
        wait_until(group_ended, "the worker jobs' end", poll=0.2)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    folder = sweep_dir(tmp_path)
    told = [err, *(log.read_text() for log in (folder / ".submitit").glob("*/*_log.err"))]
    assert proc.returncode == 130 and sum("summary.csv lists what ran" in t for t in told) == 1, told
    assert sum("the last of them to end writes its summary" in t for t in told) == 2
    summary = {r["run"]: r["status"] for r in csv.DictReader((folder / "summary.csv").open())}
    assert len(summary) == 2 and set(summary.values()) == {"interrupted"}, summary
    assert not (folder / ".search.lock").exists() and not (folder / ".cnnexp.lock").exists()
    assert cli("check", str(folder)).returncode == 0


def test_worker_jobs_need_a_submitit_launcher(tmp_path):
    proc = cli("train", "-m", "hydra/sweeper=optuna", "hydra.sweeper.workers=2", "model.kernel_size=choice(3,5)",
               f"paths.output_dir={tmp_path / 'out'}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "cnnexp: error: hydra.sweeper.workers=2 is not valid: worker jobs need hydra/launcher=slurm" in proc.stderr
    assert not (tmp_path / "out").exists()
