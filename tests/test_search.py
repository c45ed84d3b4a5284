"""`hydra/sweeper=optuna`: a real Optuna study in SQLite, real trials through Hydra's launcher,
impossible shapes rejected without training, pruning, and a search killed and resumed."""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cnnexp.check import folder_findings as check
from cnnexp.core.errors import SettingsError
from cnnexp.search.options import param_lines
from cnnexp.search.space import check_search, grid, search_space
from cnnexp.search.study import STUDY_NAME, storage_url
from tests.helpers import QUICK, SHORT, cli, finish, killed_after_epoch, start, sweep_dir, wait_for_epoch

pytestmark = pytest.mark.xdist_group("test_search")  # its module fixtures are built once, on one worker



def runs(folder):
    return {d.name: json.loads((d / "results.json").read_text()) for d in folder.iterdir()
            if d.is_dir() and not d.name.startswith((".", "_"))}  # _sweep: the sweep's own TensorBoard run


def trials(folder):
    return optuna.load_study(study_name=STUDY_NAME, storage=storage_url(folder)).get_trials()


# ------------------------------------------------------------------ the search space, no training
def test_the_official_grammar_becomes_distributions():
    space, fixed = search_space(["model.kernel_size=choice(3,5,7)", "model.pool=max,avg", "model.stride=range(1,4)",
                                 "optimizer.lr=tag(log,interval(1e-4,1e-2))", "loss.label_smoothing=interval(0.0,0.2)",
                                 "seed=1", "model.pool=l2,max"])
    assert fixed == ["seed=1"]
    assert space["model.kernel_size"].choices == (3, 5, 7)
    assert space["model.pool"].choices == ("l2", "max"), "a later line for a key wins"
    assert (space["model.stride"].low, space["model.stride"].high, space["model.stride"].step) == (1, 3, 1)
    assert space["optimizer.lr"].log and space["optimizer.lr"].low == pytest.approx(1e-4)
    assert not space["loss.label_smoothing"].log
    with pytest.raises(SettingsError, match="grid sampler"):
        grid(space)
    with pytest.raises(SettingsError, match="low < high"):
        search_space(["optimizer.lr=interval(0.1,0.01)"])


def test_named_search_composes_with_its_five_keys():
    from hydra import compose, initialize_config_dir

    from cnnexp import CONF_DIR
    from cnnexp.config.compose import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = compose("train", ["sweep=search_architecture"], return_hydra_config=True)
    options = check_search(config)
    space, _ = search_space(param_lines(options))
    assert set(space) == {"model.kernel_size", "model.stride", "model.padding", "model.pool", "optimizer.lr"}
    assert space["optimizer.lr"].log and options.pruner == "median" and options.n_trials == 30


def test_a_bad_search_option_is_one_line_and_no_folder(tmp_path, calibrated):
    out = tmp_path / "out"
    proc = cli("train", "-m", "hydra/sweeper=optuna", "hydra.sweeper.sampler=bayes", "model.kernel_size=choice(3,5)",
               f"paths.output_dir={out}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "cnnexp: error: hydra.sweeper.sampler='bayes' is not valid: one of auto, tpe, nsga2, random, grid" in proc.stderr
    assert not out.exists()


# ------------------------------------------------------------------ a search that trains
@pytest.fixture(scope="module")
def search(tmp_path_factory, shared_data, calibrated):
    """Grid over kernel × stride: kernel 5 with stride 2 cannot fit (28 → 13 → 6 → 2 → 1 → 0)."""
    out = tmp_path_factory.mktemp("search")
    proc = cli("train", "-m", "hydra/sweeper=optuna", "hydra.sweeper.sampler=grid", "hydra.sweeper.n_trials=10",
               "model.kernel_size=choice(3,5)", "model.stride=choice(1,2)", *SHORT, f"paths.output_dir={out}")
    return sweep_dir(out), proc


def test_impossible_shapes_are_rejected_without_training(search):
    folder, proc = search
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = runs(folder)
    assert sorted(results) == ["kernel_size=3,stride=1", "kernel_size=3,stride=2",
                               "kernel_size=5,stride=1", "kernel_size=5,stride=2"], "n_trials capped at the grid's 4"
    bad = results.pop("kernel_size=5,stride=2")
    assert bad["status"] == "failed" and bad["rejected"] and bad["refused"] and "< 1" in bad["reason"]
    assert sorted(p.name for p in (folder / "kernel_size=5,stride=2").iterdir()) == ["results.json"], \
        "no process ran for it: no log, config or checkpoint"
    assert all(r["status"] == "ok" and r["test_acc"] > 0.2 for r in results.values())
    study = {t.user_attrs["run"]: t for t in trials(folder)}
    assert study["kernel_size=5,stride=2"].state == TrialState.FAIL and study["kernel_size=5,stride=2"].user_attrs["rejected"]
    for name, r in results.items():
        assert study[name].state == TrialState.COMPLETE and study[name].value == pytest.approx(r["best_val_acc"])
    assert "search: 3 trained, 0 pruned, 1 rejected by the shape check" in proc.stdout
    assert len(trials(folder)) == 4 and "max_rejected" not in proc.stdout + proc.stderr, \
        "the grid's 4 points tried once each: none asked again"
    assert not (folder / ".search.lock").exists() and not (folder / ".cnnexp.lock").exists(), \
        "a finished search leaves no lock file"


def test_check_reads_a_refused_setting_from_its_record(search, tmp_path):
    folder = tmp_path / "search"
    shutil.copytree(search[0], folder)
    refused = folder / "kernel_size=5,stride=2"
    record = json.loads((refused / "results.json").read_text())
    assert check(folder) == ([], [])
    (refused / "metrics.csv").write_text("epoch\n0\n")
    assert check(folder)[0] == [f"{refused}/results.json: says its settings were refused before it ran, "
                                "but it holds metrics.csv"]
    (refused / "metrics.csv").unlink()
    unmarked = {k: v for k, v in record.items() if k not in ("refused", "rejected")}
    (refused / "results.json").write_text(json.dumps(unmarked))
    assert check(folder) == ([], []), "a record and nothing else: a grid's refusal written before `refused`"
    (refused / "metrics.csv").write_text("epoch\n0\n")
    assert f"{refused}: no config.yaml" in check(folder)[0], "a failed run that trained and lost its config"


HOLD = """
import sys, time
from pathlib import Path
from cnnexp.core.locks import WorkerLock
lock = WorkerLock(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(600)
"""


def test_check_sees_a_search_whose_workers_hold_its_lock_as_running(search, tmp_path):
    """Two live worker processes share the search's lock: check says the search is running, and a
    trial killed with its worker is the search's to run again; once they are killed, neither."""
    folder = tmp_path / "search"
    shutil.copytree(search[0], folder)
    killed = folder / "kernel_size=3,stride=1"
    (killed / "results.json").write_text(json.dumps({**json.loads((killed / "results.json").read_text()),
                                                     "status": "running"}))
    workers = [subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True,
                                start_new_session=True) for _ in range(2)]
    try:
        assert [w.stdout.readline() for w in workers] == ["held\n", "held\n"]
        findings, notes = check(folder)
    finally:
        for w in workers:
            os.killpg(w.pid, signal.SIGKILL)
            w.wait()
    assert findings == [] and notes[0] == f"{folder}: a search is running in it (its workers hold its lock)"
    assert notes[1].startswith(f"{killed}: dead — killed with its worker; the search's running workers run it again")
    assert (folder / ".cnnexp.lock").exists(), "a kill leaves the lock file; nobody holds it"
    findings, notes = check(folder)
    # no worker left to run it again: the dead trial is a finding now (check exits 1), no longer a note
    assert notes == [] and len(findings) == 1 and findings[0].startswith(f"{killed}: dead — results.json says running")


def test_the_best_trial_is_printed_as_a_command_and_plotted(search):
    folder, proc = search
    results = {k: v for k, v in runs(folder).items() if v["status"] == "ok"}
    best = max(results, key=lambda k: results[k]["best_val_acc"])
    after = proc.stdout.split(f"best run: {best}, by best_val_acc (max); on its own:\n", 1)[1].splitlines()
    folded = next(i for i, text in enumerate(after) if not text.endswith(" \\"))  # folded to 100 columns
    line = " ".join(text.removesuffix(" \\").strip() for text in after[:folded + 1])
    assert shlex.split(line)[:3] == ["python", "-m", "cnnexp.train"]
    assert shlex.split(line)[3:] == results[best]["overrides"]
    rows = list(csv.DictReader((folder / "summary.csv").open()))
    assert rows[0]["run"] == best and rows[-1]["status"] == "rejected", "best first, the rejected last"
    assert (folder / "search_history.png").stat().st_size > 0 and (folder / "search_importance.png").stat().st_size > 0
    events = EventAccumulator(str(folder / "_sweep"))
    events.Reload()
    images = set(events.Tags()["images"])
    assert {"search/history", "search/importance"} <= images and any(t.startswith("sweep/summary") for t in images)


def folder_bytes(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_resumed_search_with_nothing_left_asks_nothing_and_changes_nothing(search, tmp_path, calibrated):
    """The grid's 4 points were all tried: an idle resume, and one that asks for more trials than
    the grid holds, each say so in one line, ask the sampler nothing (no Optuna warning), print no
    estimate for trials they will not run, and leave every byte of the folder — study.db too."""
    folder = tmp_path / "search"
    shutil.copytree(search[0], folder)
    before = folder_bytes(folder)
    for extra in ([], ["hydra.sweeper.n_trials=7"]):
        proc = cli("train", "-m", f"resume={folder}", *extra)
        said = proc.stdout + proc.stderr
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert said.count("search: each of the grid's 4 points was tried (3 trained, 1 rejected or asked again): "
                          "nothing to run") == 1, said[-3000:]
        assert "GridSampler" not in said and "re-evaluating" not in said and "search: ~" not in said, said[-3000:]
        assert folder_bytes(folder) == before, extra
    assert len(trials(folder)) == 4


def test_the_search_summary_counts_trials_re_run_and_re_runs(tmp_path, capsys):
    """One trial lost twice and re-run twice, another trained once: 1 trial re-run, 2 re-runs."""
    from cnnexp.search.report import report
    from cnnexp.search.study import open_storage

    study = optuna.create_study(storage=open_storage(tmp_path, "sqlite"), study_name=STUDY_NAME, direction="maximize")
    for attrs, state in [({"run": "lr=0.1", "superseded": True}, TrialState.FAIL),
                         ({"run": "lr=0.1", "superseded": True, "retry_of": 0}, TrialState.FAIL),
                         ({"run": "lr=0.1", "retry_of": 1}, TrialState.COMPLETE),
                         ({"run": "lr=0.2"}, TrialState.COMPLETE)]:
        trial = study.ask()
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        study.tell(trial, 0.5 if state == TrialState.COMPLETE else None, state=state)
    report(tmp_path, write=False)
    said = capsys.readouterr().out
    assert "search: 2 trained, 0 pruned" in said
    assert "1 re-run after their worker was lost (2 re-runs in all)" in said, said


@pytest.mark.parametrize("sig", [pytest.param(s, marks=pytest.mark.slow) for s in ("SIGINT", "SIGTERM")])  # 20 s each
def test_a_signal_to_a_search_is_one_line_and_its_trial_is_recorded_interrupted(tmp_path, shared_data, sig, calibrated):
    """Ctrl-C (or SIGTERM) mid-trial: no traceback — none dropped in a finaliser either — one
    cnnexp line, exit 128 + the signal's number, and the trial's record says interrupted."""
    out = tmp_path / "out"
    proc = start(["-m", "hydra/sweeper=optuna", "hydra.sweeper.sampler=grid", "optimizer.lr=choice(0.001,0.002)",
                  *QUICK, "trainer.limit_train_batches=15"], out, pipe=True)
    try:
        wait_for_epoch(out, proc, "multirun/*/*/*/metrics.csv")
        os.killpg(proc.pid, getattr(signal, sig))
        _, err = finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + getattr(signal, sig), err[-3000:]
    assert "Traceback" not in err and "Exception ignored" not in err, err[-3000:]
    told = [line for line in err.splitlines() if line.startswith("cnnexp: ")]
    assert len(told) == 1 and told[0].startswith("cnnexp: interrupted: the sweep stopped"), err[-3000:]
    folder = sweep_dir(out)
    [(name, record)] = runs(folder).items()
    assert record["status"] == "interrupted" and f"received {sig}" in record["reason"], record
    summary = {r["run"]: r["status"] for r in csv.DictReader((folder / "summary.csv").open())}
    assert summary == {name: "interrupted"}


# ------------------------------------------------------------------ pruning, a kill and a resume
@pytest.mark.slow  # a sweep's resume stays in the default run (test_sweep_records)
def test_a_killed_search_prunes_and_resumes_its_study(tmp_path, shared_data, calibrated):
    """The grid's seeded order is lr 0.003, 1e-07, 0.002: the first finishes, the second trails
    it after one epoch and is pruned, the third is killed in its second epoch and resumed."""
    out = tmp_path / "out"
    args = ["-m", "hydra/sweeper=optuna", "hydra.sweeper.sampler=grid", "hydra.sweeper.seed=5",
            "hydra.sweeper.pruner=median", "hydra.sweeper.pruner_startup_trials=1",
            "optimizer.lr=choice(0.003,0.0000001,0.002)", *QUICK, "trainer.max_epochs=3", "trainer.limit_train_batches=15"]
    killed_after_epoch(args, out, "multirun/*/*/lr=0.002/metrics.csv")
    folder = sweep_dir(out)
    first = folder / "lr=0.003"
    before = {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()}
    pruned = json.loads((folder / "lr=1e-07" / "results.json").read_text())
    assert pruned["status"] == "pruned" and pruned["epochs"] == 1 and "median pruner" in pruned["reason"]
    assert pruned["best_val_acc"] is not None and "test_acc" not in pruned, "its last metrics, no test"
    assert json.loads((folder / "lr=0.002" / "results.json").read_text())["status"] == "running"
    assert (folder / ".search.lock").exists() and (folder / ".cnnexp.lock").exists(), "a kill leaves its lock files"
    checked = cli("check", str(folder))
    assert checked.returncode == 1 and "is running in it" not in checked.stdout, "nobody holds them: dead, a finding"
    assert f"{folder / 'lr=0.002'}: dead —" in checked.stdout

    resumed = cli("train", "-m", f"resume={folder}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not (folder / ".search.lock").exists() and not (folder / ".cnnexp.lock").exists(), "the resume ended last"
    assert sweep_dir(out) == folder
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()} == before, "not retrained"
    results = runs(folder)
    assert sorted(results) == ["lr=0.002", "lr=0.003", "lr=1e-07"]
    resumed_run = results["lr=0.002"]  # it may trail lr=0.003 and be pruned in a later epoch: both are its truth
    epochs = [r["epoch"] for r in csv.DictReader((folder / "lr=0.002" / "metrics.csv").open())]
    assert epochs == ["0", "1", "2"][: resumed_run["epochs"]] and len(epochs) >= 2, \
        "the killed trial continued from its checkpoint, each epoch once"
    assert (resumed_run["status"], resumed_run["epochs"]) in (("ok", 3), ("pruned", 2))
    done = {"ok": "COMPLETE", "pruned": "PRUNED"}[resumed_run["status"]]
    study = trials(folder)
    states = sorted((t.user_attrs["run"], t.state.name, bool(t.user_attrs.get("superseded"))) for t in study)
    assert states == sorted([("lr=0.002", done, False), ("lr=0.002", "FAIL", True),
                             ("lr=0.003", "COMPLETE", False), ("lr=1e-07", "PRUNED", False)])
    summary = {r["run"]: r["status"] for r in csv.DictReader((folder / "summary.csv").open())}
    assert summary == {"lr=0.002": resumed_run["status"], "lr=0.003": "ok", "lr=1e-07": "pruned"}
    hparams = session_hparams(folder / "lr=1e-07")
    assert hparams["status"] == "pruned" and hparams["optimizer.lr"] == pytest.approx(1e-7)


def session_hparams(run) -> dict:
    """The hparams a run logged for TensorBoard's HParams tab (its session start info)."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(run))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {k: v.string_value or v.number_value for k, v in info.hparams.items()}
