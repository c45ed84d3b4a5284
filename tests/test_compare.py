"""Honest comparisons: the statistics against scipy on fixed inputs, a real 2 settings × 3 seeds
sweep's summary (intervals, Welch p, seeds needed), and `cnnexp.compare` giving the same figures."""

from __future__ import annotations

import csv
import re
import shutil

import pytest
from scipy import stats as scipy_stats

from cnnexp.compare import main as compare_main
from cnnexp.sweeps import stats
from tests.helpers import QUICK, cli, in_process

pytestmark = pytest.mark.xdist_group("test_compare")  # its module fixtures are built once, on one worker

# the small network, few batches: six runs in one process
TINY = [*QUICK, "model=speed", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        *(f"callbacks.views.{view}=false" for view in ("text", "filters", "feature_maps", "receptive_field",
                                                        "mistakes", "confusion_matrix"))]


# ------------------------------------------------------------------ the numbers, against scipy
@pytest.mark.parametrize("df", [1, 2, 3.7, 10, 250])
def test_t_distribution_matches_scipy(df):
    for t in (-6.0, -1.3, 0.0, 0.4, 2.1, 9.0):
        assert stats.t_cdf(t, df) == pytest.approx(scipy_stats.t.cdf(t, df), abs=1e-11)
    for p in (0.001, 0.025, 0.3, 0.5, 0.9, 0.975):
        assert stats.t_ppf(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-9, abs=1e-12)


def test_noncentral_t_and_seeds_needed_match_scipy():
    for df, nc, t in [(2, 0.0, 1.0), (4, 1.5, 2.0), (10, 3.0, 2.2), (58, 2.8, -2.0), (4000, 0.5, 1.96)]:
        assert stats.nct_cdf(t, df, nc) == pytest.approx(scipy_stats.nct.cdf(t, df, nc), abs=1e-8)

    def scipy_power(difference, sd, n):
        df, nc = 2 * n - 2, difference / (sd * (2 / n) ** 0.5)
        critical = scipy_stats.t.ppf(0.975, df)
        return 1 - scipy_stats.nct.cdf(critical, df, nc) + scipy_stats.nct.cdf(-critical, df, nc)

    for difference, sd, expected in [(0.01, 0.02, 64), (0.04, 0.02, 6), (1.0, 0.1, 2), (0.003, 0.004, 29)]:
        n = stats.seeds_needed(difference, sd)
        assert scipy_power(difference, sd, n) >= 0.8 > (scipy_power(difference, sd, n - 1) if n > 2 else 0)
        assert n == expected  # the smallest n at 80 % power, as scipy's noncentral t says
    assert stats.seeds_needed(0.0, 0.02) is None and stats.seeds_needed(0.01, 0.0) is None


def test_interval_and_welch_match_scipy():
    a, b = [0.912, 0.931, 0.925, 0.918], [0.884, 0.902, 0.861]
    found = stats.interval(a)
    low, high = scipy_stats.t.interval(0.95, len(a) - 1, loc=sum(a) / len(a), scale=scipy_stats.sem(a))
    assert (found.low, found.high) == (pytest.approx(low, abs=1e-10), pytest.approx(high, abs=1e-10))
    test = stats.welch(a, b)
    reference = scipy_stats.ttest_ind(a, b, equal_var=False)
    interval = reference.confidence_interval(0.95)
    assert test.p == pytest.approx(reference.pvalue, rel=1e-8)
    assert test.df == pytest.approx(reference.df, rel=1e-12)
    assert (test.low, test.high) == (pytest.approx(interval.low, abs=1e-10), pytest.approx(interval.high, abs=1e-10))
    assert test.difference == pytest.approx(sum(a) / 4 - sum(b) / 3)


def test_one_run_has_no_interval_and_no_test():
    assert stats.interval([0.9]).text() == "0.9000 (1 run — no interval)"
    assert stats.welch([0.9], [0.8, 0.85]) is None and stats.interval([]) is None


# ------------------------------------------------------------------ a real sweep
@pytest.fixture(scope="module")
def replicated(tmp_path_factory, shared_data, calibrated):
    """2 settings × 3 seeds of real, tiny training."""
    out = tmp_path_factory.mktemp("replicated")
    proc = cli("train", "-m", "model.kernel_size=3,5", "seed=1,2,3", *TINY, f"paths.output_dir={out}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (folder,) = (out / "multirun").glob("*/*")
    return folder, proc.stdout


def _rows(path):
    return {r[""] if "" in r else r["setting"]: r for r in csv.DictReader(path.open())}


def contrast_line(stdout: str, start: str) -> str:
    """The contrast as one line: printed folded to 100 columns, continued indented."""
    lines = stdout.splitlines()
    first = next(i for i, x in enumerate(lines) if x.startswith(start))
    rest = [x.strip() for x in lines[first + 1:first + 4] if x.startswith("  ") and not x.startswith("  python")]
    assert all(len(x) <= 100 for x in lines[first:first + 1 + len(rest)])
    return " ".join([lines[first], *rest])


def test_summary_prints_intervals_p_value_and_seeds_needed(replicated):
    folder, stdout = replicated
    summary = _rows(folder / "summary.csv")
    assert set(summary) == {"kernel_size=3", "kernel_size=5"}
    for name, row in summary.items():
        values = [float(r["val acc"]) for r in csv.DictReader((folder / "summary_runs.csv").open())
                  if r["run"].startswith(name + ",")]
        expected = stats.interval(values)
        assert row["n"] == row["ok"] == "3" and expected.n == 3
        assert float(row["val acc 95% low"]) == pytest.approx(expected.low, abs=1e-6)
        assert float(row["val acc 95% high"]) == pytest.approx(expected.high, abs=1e-6)
        assert f"| {expected.low:.4f}–{expected.high:.4f} |" in stdout
    wide = [x for x in stdout.splitlines() if len(x) > 100]
    assert not wide, f"every table and line the sweep prints fits 100 columns: {wide}"
    line = contrast_line(stdout, "best vs runner-up by val acc: ")
    assert re.search(r"Welch p = [0-9.e-]+; (\d+ seeds per setting to tell it apart at 80% power|no spread)", line), line


def test_compare_gives_the_summary_figures(replicated, tmp_path, calibrated):
    folder, stdout = replicated
    proc = cli("compare", f"{folder}:kernel_size=5", f"{folder}:model.kernel_size=3", f"out={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    assert "model.blocks.0.kernel_size" in proc.stdout and "| 1,2,3 |" in proc.stdout  # keys that differ, seeds listed
    assert not re.search(r"model\.kernel_size\s*\|", proc.stdout), "the typed shortcut: the blocks say what ran"
    compared = list(csv.DictReader((tmp_path / "compare.csv").open()))
    summary = _rows(folder / "summary.csv")
    for row in compared:
        setting = summary[row[""].rpartition(":")[2].removeprefix("model.")]
        for column in ("val acc mean", "val acc sd", "val acc 95% low", "val acc 95% high", "test acc mean"):
            assert float(row[column]) == pytest.approx(float(setting[column]), abs=1e-12), column
    p = float(compared[1]["Welch p"])
    line = contrast_line(stdout, "best vs runner-up")
    assert f"Welch p = {p:.3g};" in line, "the summary's test is the compare's"
    assert (tmp_path / "compare.png").read_bytes()[:4] == b"\x89PNG"


def _compare(capsys, *args):
    """cnnexp.compare in this process: (exit code, stdout, stderr)."""
    return in_process(compare_main, args, capsys)


def test_compare_runs_and_refusals(replicated, tmp_path, capsys):
    folder, _ = replicated
    one, other = folder / "kernel_size=3,seed=1", folder / "kernel_size=5,seed=2"
    code, out, _ = _compare(capsys, str(one), str(other), f"out={tmp_path}")
    assert code == 0 and "single runs — no interval and no test" in out and "1 run — no interval" not in out
    code, out, _ = _compare(capsys, str(folder), f"out={tmp_path}")  # a sweep: each of its settings
    assert code == 0 and f"{folder}:kernel_size=3 " in out and f"{folder}:kernel_size=5 " in out
    code, out, _ = _compare(capsys, "--help")
    assert code == 0 and out.startswith("usage: python -m cnnexp.compare")

    recon = tmp_path / "recon"
    shutil.copytree(one, recon, ignore=shutil.ignore_patterns("checkpoints", "events*"))
    config = recon / "config.yaml"
    config.write_text(config.read_text().replace("task: classification", "task: reconstruction"))
    for args, says in [((str(one), str(recon)), "trained different tasks"),
                       ((str(one), str(tmp_path)), "not a run folder"),
                       ((f"{folder}:kernel_size=7", str(one)), "no settings match"),
                       ((str(one),), "only one setting"),
                       ((), "usage:")]:
        code, _, err = _compare(capsys, *args, f"out={tmp_path / 'bad'}") if args else _compare(capsys)
        assert code == 2 and says in err and err.count("\n") == 1 and err.startswith("cnnexp: error: "), err
    assert not (tmp_path / "bad").exists()


def test_a_run_recorded_before_a_key_existed_differs_only_in_what_it_ran(replicated, tmp_path, capsys):
    """config.yaml of a run from before augment.shift (issue #41) and early stopping: compare reads it
    as the run ran (migrations), so the keys it lacks are no difference from a run that left them off."""
    import yaml

    folder, _ = replicated
    one, other = folder / "kernel_size=3,seed=1", folder / "kernel_size=5,seed=2"
    old = tmp_path / "old"
    shutil.copytree(one, old, ignore=shutil.ignore_patterns("checkpoints", "events*"))
    config = yaml.safe_load((old / "config.yaml").read_text())
    config.pop("augment")
    config["callbacks"].pop("early_stopping")
    (old / "config.yaml").write_text(yaml.safe_dump(config))
    code, out, _ = _compare(capsys, str(old), str(other), f"out={tmp_path / 'out'}")
    assert code == 0 and "kernel_size" in out, out
    assert "augment" not in out and "early_stopping" not in out, out


# ------------------------------------------------------------------ intervals inside what a metric can be
def test_the_sweeps_hparams_carry_each_settings_interval_clipped_to_its_range(tmp_path, capsys):
    """A hand-made record of 2 settings × 3 seeds, one near the ceiling (0.99, 1.0, 0.96: mean ±
    t·sd/√n reaches 1.035): the table clips it to 1 and says so, summary.csv holds 1.0, and
    SWEEP/_sweep holds one HParams session per setting with its mean and interval as metrics."""
    import json

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    from cnnexp.sweeps.summarize import write_summary

    (tmp_path / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: ['model.kernel_size=3,5', 'seed=1,2,3']\n")
    for kernel, accs in {3: [0.99, 1.0, 0.96], 5: [0.90, 0.91, 0.92]}.items():
        for seed, acc in zip((1, 2, 3), accs):
            run = tmp_path / f"kernel_size={kernel},seed={seed}"
            run.mkdir()
            run.joinpath("results.json").write_text(json.dumps({
                "status": "ok", "monitor": "val/acc", "mode": "max", "best_val_acc": acc,
                "overrides": [f"model.kernel_size={kernel}", f"seed={seed}"]}))
    write_summary(tmp_path, ["seed"])
    out = capsys.readouterr().out
    assert "| 0.9316–1.0000* |" in out and "| 0.8852–0.9348 |" in out and "clipped to it" in out
    assert float(_rows(tmp_path / "summary.csv")["kernel_size=3"]["val acc 95% high"]) == 1.0

    def hparams_data(folder):
        events = EventAccumulator(str(folder))
        events.Reload()
        data = [plugin_data_pb2.HParamsPluginData.FromString(c) for c in events.PluginTagToContent("hparams").values()]
        return events, data

    _, (experiment,) = hparams_data(tmp_path / "_sweep")
    declared = {m.name.tag: m.description for m in experiment.experiment.metric_infos}
    assert {"setting/best_val_acc_mean", "setting/best_val_acc_low", "setting/best_val_acc_high"} <= set(declared)
    assert "clipped to [0, 1]" in declared["setting/best_val_acc_high"]
    events, data = hparams_data(tmp_path / "_sweep" / "kernel_size=3")
    start = next(d.session_start_info for d in data if d.WhichOneof("data") == "session_start_info")
    assert start.hparams["status"].string_value == "setting" and start.hparams["model.kernel_size"].number_value == 3
    value = {tag: events.Scalars(tag)[0].value for tag in events.Tags()["scalars"]}
    assert value["setting/best_val_acc_high"] == 1.0 and value["setting/n"] == 3
    assert value["setting/best_val_acc_low"] == pytest.approx(0.9316, abs=1e-4)
    assert value["setting/best_val_acc_mean"] == pytest.approx(0.98333, abs=1e-4)


def test_compare_png_band_is_clipped_as_the_table_is():
    """Two seeds near the ceiling: mean ± t·sd/√2 passes 1 (and a loss's falls below 0); the band
    compare.png draws stays inside what the metric can be, as the table's `(clipped)` ends do."""
    from cnnexp.compare import band

    accuracies = [[0.90, 0.99], [0.97, 1.0]]
    assert max(stats.interval(v).high for v in accuracies) > 1  # unclipped, the band would pass 1
    means, lows, highs = band("val/acc", accuracies)
    assert max(highs) == 1.0 and min(lows) >= 0 and means == [pytest.approx(0.945), pytest.approx(0.985)]
    _, lows, highs = band("val/loss", [[0.02, 0.30], [0.05]])
    assert lows[0] == 0.0 and highs[0] > 0.30 and lows[1] == highs[1] == 0.05  # one run: no band


def test_what_compare_writes_by_default_is_ignored_by_git():
    """compare's default out= is the current folder: in a clone, its files stay out of `git status`."""
    import subprocess

    from tests.helpers import PROJECT

    if not (PROJECT / ".git").exists():
        pytest.skip("not a git checkout")
    names = ["compare.csv", "compare.png"]
    proc = subprocess.run(["git", "check-ignore", "--no-index", *names], cwd=PROJECT, capture_output=True, text=True)
    assert proc.stdout.split() == names


def test_resuming_a_finished_sweep_says_nothing_is_left(replicated, tmp_path, calibrated):
    """Every run ended ok: the resume's cost line says there is nothing to run, not `~0.0 s`."""
    folder = tmp_path / "sweep"
    shutil.copytree(replicated[0], folder)
    proc = cli("train", "-m", f"resume={folder}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if "sweep: 6 runs" in x)
    assert line.endswith("sweep: 6 runs — all ended ok before (skipped): nothing left to run"), line
