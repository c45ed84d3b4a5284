"""Real Hydra multiruns: failures recorded, names, HParams, the summary, launchers."""

from __future__ import annotations

import csv
import json
import re
import shutil

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import SHARED_DATA, SHORT, cli, sweep_dir
from tests.tensorboard_server import tensorboard

pytestmark = pytest.mark.xdist_group("test_sweeps")  # its module fixtures are built once, on one worker



@pytest.fixture(scope="module")
def grid(tmp_path_factory, shared_data, calibrated):
    """2×2 over kernel and stride; kernel 5 with stride 2 cannot fit (28 → 13 → 6 → 2 → 1 → 0)."""
    out = tmp_path_factory.mktemp("sweep")
    proc = cli("train", "-m", "model.kernel_size=3,5", "model.stride=1,2", *SHORT, f"paths.output_dir={out}")
    return sweep_dir(out), proc


def test_failed_setting_is_recorded_and_the_rest_finish(grid):
    folder, proc = grid
    assert proc.returncode == 1
    assert "1 of 4 runs refused before launch" in proc.stderr
    before = proc.stdout.split("[1/4]")[0]  # said before any job started, one entry with its reason
    assert "1 of 4 settings refused before launch" in before and "kernel_size=5,stride=2: block" in before
    statuses = {d.name: json.loads((d / "results.json").read_text()) for d in folder.iterdir()
                if d.is_dir() and d.name != "_sweep"}
    assert sorted(statuses) == ["kernel_size=3,stride=1", "kernel_size=3,stride=2",
                                "kernel_size=5,stride=1", "kernel_size=5,stride=2"]
    bad = statuses.pop("kernel_size=5,stride=2")
    assert bad["status"] == "failed" and bad["refused"] and "< 1" in bad["reason"] and "block" in bad["reason"]
    assert all(r["status"] == "ok" and r["test_acc"] > 0.2 for r in statuses.values())


def test_each_job_prints_its_header_and_result_and_failures_stay_whole(grid):
    folder, proc = grid
    assert re.search(r"^\[[\d:]+\] \[1/4\] kernel_size=3,stride=1( — ETA .+ for the rest of the sweep)?$", proc.stdout, re.M), \
        "a one-line header per job"
    assert re.search(r"\] \[1/4\] kernel_size=3,stride=1: test accuracy: [\d.]+ %", proc.stdout)
    assert "#0 : " not in proc.stdout, "Hydra's own job list gives way to the headers"
    assert proc.stdout.count("accelerator: cpu") == 1 and "`Trainer.fit` stopped" not in proc.stdout, \
        "the jobs' shared device line once, and no end-of-fit line before each result"
    assert re.search(r"\] \[4/4\] kernel_size=5,stride=2: refused before launch \(above\); recorded\n", proc.stdout), \
        proc.stdout[-3000:]
    assert "invalid settings" not in proc.stdout, "said once, before launch, not again as the job starts"
    reason = json.loads((folder / "kernel_size=5,stride=2" / "results.json").read_text())["reason"]
    closing = " ".join(proc.stderr.split())
    assert f"kernel_size=5,stride=2: {' '.join(reason.splitlines()[0].split())}" in closing, \
        "the closing list: each reason whole, folded"
    wide = [line for line in (proc.stdout + proc.stderr).splitlines() if len(line) > 100
            and str(folder) not in line]  # a path is as long as it is
    assert not wide, wide


def test_check_passes_a_sweep_whose_refused_setting_holds_only_its_record(grid):
    from cnnexp.check import sweep_findings as check_sweep

    folder, _ = grid
    assert not (folder / "kernel_size=5,stride=2" / "config.yaml").exists()
    assert check_sweep(folder)[0] == []


def test_summary_csv_matches_the_runs_and_is_rebuilt(grid, calibrated):
    folder, proc = grid
    rows = list(csv.DictReader((folder / "summary.csv").open()))
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "refused"], "sorted by validation accuracy"
    vals = [float(r["val acc"]) for r in rows[:3]]
    assert vals == sorted(vals, reverse=True)
    for r in rows[:3]:
        results = json.loads((folder / r["run"] / "results.json").read_text())
        assert float(r["test acc"]) == pytest.approx(results["test_acc"], abs=1e-4)
    assert "| kernel_size=" in proc.stdout
    (folder / "summary.csv").unlink()
    again = cli("summary", str(folder))
    assert again.returncode == 0 and list(csv.DictReader((folder / "summary.csv").open())) == rows


def test_hparams_hold_real_metrics(grid):
    folder, _ = grid
    run = folder / "kernel_size=3,stride=1"
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    results = json.loads((run / "results.json").read_text())
    tags = acc.Tags()["scalars"]
    for key in ("best_val_acc", "test_acc", "params", "images_per_s"):
        assert f"run/{key}" in tags
        value = acc.Scalars(f"run/{key}")[-1].value
        assert value == pytest.approx(results[key], rel=1e-4) and value > 0


def test_a_refused_setting_is_a_session_in_hparams_with_its_status(grid):
    """Issue #42: HParams' status column only ever showed ok; the setting that cannot work was absent."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    folder, _ = grid
    session = folder / "_sweep" / "kernel_size=5,stride=2"
    events = EventAccumulator(str(session), size_guidance={"tensors": 0})
    events.Reload()
    start = events.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    values = plugin_data_pb2.HParamsPluginData.FromString(start).session_start_info.hparams
    assert values["status"].string_value == "refused"
    assert values["model.kernel_size"].number_value == 5 and values["model.stride"].number_value == 2
    end = events.SummaryMetadata("_hparams_/session_end_info").plugin_data.content
    assert plugin_data_pb2.HParamsPluginData.FromString(end).session_end_info.status == 2, "STATUS_FAILURE"


@pytest.mark.slow  # a resumed training; test-all runs it
def test_resuming_one_run_of_a_sweep_marks_its_summary_stale(grid, tmp_path, calibrated):
    folder = tmp_path / "sweep"
    shutil.copytree(grid[0], folder)
    proc = cli("train", f"resume={folder / 'kernel_size=3,stride=2'}", "trainer.max_epochs=2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "the sweep's summary no longer matches this run; rebuild it: python -m cnnexp.summary" in proc.stdout
    assert (folder / ".summary-stale").read_text() == "kernel_size=3,stride=2\n"
    checked = cli("check", str(folder))
    assert f"{folder}/summary.csv: older than the run resumed since (kernel_size=3,stride=2)" in checked.stdout
    again = cli("summary", str(folder))
    assert again.returncode == 0, again.stderr[-2000:]
    assert not (folder / ".summary-stale").exists(), "the rebuilt summary clears the mark"
    assert "older than" not in cli("check", str(folder)).stdout


def test_check_says_a_sweeps_summary_is_older_than_its_resumed_runs(grid, tmp_path):
    """hostile2 K0: the mark a run resumed on its own leaves was read by nothing; `check` said ok."""
    from cnnexp.records.folder import mark_summary_stale

    folder = tmp_path / "sweep"
    shutil.copytree(grid[0], folder, ignore=shutil.ignore_patterns("*.ckpt", "events.out.*"))
    for name in ("kernel_size=3,stride=2", "kernel_size=5,stride=2"):
        mark_summary_stale(folder, name)
    proc = cli("check", str(folder))
    assert (f"{folder}/summary.csv: older than the runs resumed since (kernel_size=3,stride=2, "
            f"kernel_size=5,stride=2); python -m cnnexp.summary {folder} rebuilds it") in proc.stdout.splitlines()


def test_tensorboard_server_lists_runs_by_name_with_hparams(grid):
    folder, _ = grid
    with tensorboard(folder) as tb:
        runs = tb.runs()
        assert {"kernel_size=3,stride=1", "kernel_size=3,stride=2", "kernel_size=5,stride=1"} <= set(runs)
        experiment = tb.post("/data/plugin/hparams/experiment", {"experimentName": ""})
        hparam_names = {h["name"] for h in experiment["hparamInfos"]}
        assert {"model.kernel_size", "model.stride", "optimizer.lr"} <= hparam_names
        metric_tags = {m["name"]["tag"] for m in experiment["metricInfos"]}
        assert {"run/test_acc", "run/best_val_acc"} <= metric_tags
        groups = tb.post("/data/plugin/hparams/session_groups",
                         {"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"],
                          "colParams": [], "startIndex": 0, "sliceSize": 100})
        values = [m.get("value") for g in groups["sessionGroups"] for m in g.get("metricValues", [])]
        assert len(groups["sessionGroups"]) == 3 and values and all(v is not None and v > -1 for v in values)
        every = tb.post("/data/plugin/hparams/session_groups",
                        {"experimentName": "", "allowedStatuses": ["STATUS_SUCCESS", "STATUS_FAILURE"],
                         "colParams": [], "startIndex": 0, "sliceSize": 100})
        statuses = sorted(g["hparams"].get("status", "") for g in every["sessionGroups"])
        assert statuses == ["ok", "ok", "ok", "refused"], "the setting that cannot work is in HParams, with why"


def test_two_sweeps_in_the_same_second_never_share_a_folder(tmp_path):
    from cnnexp.records.folder import claim_fresh

    first, second = claim_fresh(str(tmp_path / "10-31-02")), claim_fresh(str(tmp_path / "10-31-02"))
    assert first != second and second.endswith("10-31-02-2")


# submitit's local executor is the SLURM path without a scheduler; tests/test_slurm.py runs the real one
@pytest.mark.parametrize("launcher", [pytest.param("parallel", marks=pytest.mark.slow), pytest.param("local", marks=pytest.mark.slow)])
def test_launchers_complete(tmp_path, shared_data, launcher, calibrated):
    out = tmp_path / "out"
    proc = cli("train", "-m", f"hydra/launcher={launcher}", "model.pool=max,avg", *SHORT, f"paths.output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = sweep_dir(out)
    names = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith((".", "_")))
    assert names == ["pool=avg", "pool=max"]
    assert all(json.loads((folder / n / "results.json").read_text())["status"] == "ok" for n in names)


def test_this_module_stays_on_one_worker(request):
    """Its sweeps are built once only while xdist keeps the module on one worker; pytest 9.2
    silently stopped that (pytest-xdist#1386: the test run doubled its sweep fixtures)."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not under xdist's --dist loadgroup")
    assert request.node.nodeid.endswith("@test_sweeps"), "xdist_group ignored: check pytest/pytest-xdist versions"


def test_replicates_share_their_settings_prefix():
    from cnnexp.config.compose import run_name

    assert run_name(["seed=1", "trainer.max_epochs=2", "model.kernel_size=5"]) == "kernel_size=5,max_epochs=2,seed=1"
    # Hydra's parser splits the overrides: a list value stays one part, an excluded key none
    assert run_name(["model.head.hidden=[64,32]", "data.root=x"], ["data.root"]) == "head.hidden=[64,32]"
    assert run_name(["trainer.max_epochs=2", "seed=1", "trainer.max_epochs=3"]) == "max_epochs=3,seed=1"
    assert run_name(["augment.shift=1", "tta.shift=0", "seed=2"]) == "augment.shift=1,tta.shift=0,seed=2"  # alike: whole


# ------------------------------------------------------------------ a finished grid, resumed
def test_a_resumed_grid_takes_no_search_options(grid, tmp_path, calibrated):
    from tests.test_bad_input import one_error_line, snapshot

    folder = tmp_path / "sweep"
    shutil.copytree(grid[0], folder)
    before = snapshot(folder)
    for option, words, advice in [
            ("hydra.sweeper.n_trials=5", "a grid, with no trials to add", f"`-m resume={folder}` alone"),
            ("+hydra.sweeper.sampler=random", "an option of a search (hydra/sweeper=optuna)", "start a search"),
            ("hydra.sweeper.params.model.pool=max,avg", "would change the recorded sweep", "start a new sweep"),
            ("hydra/sweeper=optuna", "would change the recorded sweep", "start a new sweep")]:
        proc = cli("train", "-m", f"resume={folder}", option)
        assert proc.returncode == 2, (option, proc.stderr[-2000:])
        line = one_error_line(proc)
        assert words in line and advice in line, line
    assert snapshot(folder) == before, "nothing written"


# The unit follows the size (core.console.duration): a busy machine's estimate may run past 90 s.
# Both estimates below use the session's one calibration (conftest `calibrated`, kept as measured):
# their ratio is the sweep's, at any speed or load.
ESTIMATE = r"~([\d.]+) (s|min|h)"


def seconds(estimate: re.Match) -> float:
    return float(estimate.group(1)) * {"s": 1, "min": 60, "h": 3600}[estimate.group(2)]


@pytest.mark.slow  # a resumed grid's training: test-all runs it; the default run stays under 5 minutes
def test_a_resumed_grid_estimates_and_runs_only_what_is_left(grid, tmp_path, calibrated):
    """3 ok runs (one of them marked killed, as SIGKILL leaves it: its last.ckpt holds its only
    epoch) and a setting that cannot fit: the estimate counts the continued run's test alone and
    the refused one's nothing; the launch ran something, so it keeps its record. The sweep sits in
    a folder whose name Hydra would misread unquoted (`=`, `,`, a quote): cnnexp quotes it."""
    folder = tmp_path / "lr=0.1,it's"
    shutil.copytree(grid[0], folder)
    killed = folder / "kernel_size=3,stride=2"
    record = json.loads((killed / "results.json").read_text())
    (killed / "results.json").write_text(json.dumps({**record, "status": "running"}))
    fresh = re.search(rf"sweep: 4 runs, {ESTIMATE} in all", grid[1].stdout)
    assert fresh, grid[1].stdout[:2000]
    proc = cli("train", "-m", f"resume={folder}")
    assert proc.returncode == 1 and "1 of 4 runs refused before launch" in proc.stderr, proc.stderr[-2000:]
    left = re.search(rf"sweep: 4 runs — 2 ended ok before \(skipped\), 1 continues from last.ckpt — {ESTIMATE}\s+for"
                     r"\s+what\s+is\s+left", proc.stdout)  # folded to 100 columns where it falls
    assert left and seconds(left) < seconds(fresh) / 4, proc.stdout[:2000]
    assert json.loads((killed / "results.json").read_text())["status"] == "ok"
    assert len(list(folder.glob(".resume-*/multirun.yaml"))) == 1, "a launch that ran something keeps its record"


def test_a_sweep_of_one_setting_is_named_by_what_was_set():
    """-m with single values (a SLURM run is one too) varies nothing: named by what was set."""
    from hydra import compose, initialize_config_dir

    from cnnexp import CONF_DIR
    from cnnexp.config.compose import NO_OVERRIDES, register_resolvers, run_name
    from cnnexp.sweeps.naming import name_exclusions

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for overrides, name in ([f"data.root={SHARED_DATA}"], NO_OVERRIDES), (["experiment=fast"], "experiment=fast"), \
                (["seed=1", "model.kernel_size=9", "paths.output_dir=x"], "kernel_size=9,seed=1"):
            config = compose(config_name="train", overrides=overrides, return_hydra_config=True)
            assert run_name(list(config.hydra.overrides.task), name_exclusions(config)) == name


@pytest.mark.slow  # 7 s; the naming itself is in the default run (above)
def test_a_sweep_of_one_impossible_setting_is_refused_before_launch_by_its_name(tmp_path, calibrated):
    """Kernel 9 with stride 2 cannot fit: a grid whose every setting is refused is one line naming
    the setting as its folder would have been named, exit 2, and no sweep folder (issue #42)."""
    proc = cli("train", "-m", "seed=1", "model.kernel_size=9", "model.stride=2", f"data.root={SHARED_DATA}",
               f"paths.output_dir={tmp_path}")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert proc.stderr.startswith("cnnexp: error: every setting of this grid is refused before launch — "
                                  "kernel_size=9,stride=2,seed=1: "), proc.stderr
    assert not any(tmp_path.iterdir())