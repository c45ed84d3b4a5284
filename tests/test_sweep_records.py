"""Sweeps you can leave, repeat and read: a killed sweep resumed from its folder, seeds grouped as
replicates, the plot, plain-number CSV, truthful HParams, fail-fast — real multiruns on MNIST."""

from __future__ import annotations

import csv
import json
import shutil
import statistics
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import PATIENCE_S, QUICK, SHORT, cli, killed_after_epoch, sweep_dir

pytestmark = pytest.mark.xdist_group("test_sweep_records")  # its module fixtures are built once, on one worker

# smaller still: this module's sweeps hold up to 4 runs
TINY = [*SHORT, "trainer.limit_train_batches=10", "trainer.limit_test_batches=1", "trainer.limit_val_batches=1"]


def runs(folder: Path) -> dict:
    return {d.name: json.loads((d / "results.json").read_text()) for d in folder.iterdir()
            if d.is_dir() and (d / "results.json").exists()}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, shared_data, calibrated):
    """2 pools × 2 seeds, kernel 5 everywhere: replicates, a plot, HParams to read back."""
    out = tmp_path_factory.mktemp("seeded")
    proc = cli("train", "-m", "model.pool=max,avg", "seed=1,2", "model.kernel_size=5", *TINY, f"paths.output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep_dir(out), proc


def test_seeds_are_grouped_as_replicates_with_mean_and_sd(seeded):
    folder, proc = seeded
    grouped = list(csv.DictReader((folder / "summary.csv").open()))
    per_run = list(csv.DictReader((folder / "summary_runs.csv").open()))
    assert len(grouped) == 2 and len(per_run) == 4
    results = runs(folder)
    for row in grouped:
        members = [r for name, r in results.items() if name.split(",")[0] == row["setting"]]
        assert int(row["n"]) == len(members) == 2
        accs = [m["best_val_acc"] for m in members]
        assert float(row["val acc mean"]) == pytest.approx(statistics.mean(accs), abs=1e-9)
        assert float(row["val acc sd"]) == pytest.approx(statistics.stdev(accs), abs=1e-9)
        tests = [m["test_acc"] for m in members]
        assert float(row["test acc mean"]) == pytest.approx(statistics.mean(tests), abs=1e-9)
    means = [float(r["val acc mean"]) for r in grouped]
    assert means == sorted(means, reverse=True)
    assert "± " in proc.stdout and "mean ± sd over seed" in proc.stdout


def test_summary_csv_holds_plain_numbers(seeded):
    folder, _ = seeded
    rows = list(csv.DictReader((folder / "summary_runs.csv").open()))
    assert len(rows) == 4, rows  # 2 pools × 2 seeds
    for row in rows:
        assert int(row["params"]) > 0 and "," not in row["params"]
        assert 0 < float(row["val acc"]) <= 1 and float(row["images/s"]) > 0


def test_summary_png_is_written(seeded):
    folder, _ = seeded
    png = (folder / "summary.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    acc = EventAccumulator(str(folder / "_sweep"), size_guidance={"images": 0})
    acc.Reload()
    assert "sweep/summary" in acc.Tags()["images"]


def test_summary_reads_the_records_without_torch(seeded):
    """`python -m cnnexp.summary` reads CSV/JSON and draws: it rewrites the sweep's TensorBoard run
    (cnnexp.tracking.events) without the seconds that importing torch costs."""
    import subprocess
    import sys

    folder, _ = seeded
    before = set((folder / "_sweep").glob("events.out.tfevents.*"))
    code = "import sys; from cnnexp.summary import main; main(sys.argv[1:]); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=PATIENCE_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1] == "False", "the summary imported torch"
    (written,) = set((folder / "_sweep").glob("events.out.tfevents.*")) - before
    acc = EventAccumulator(str(written), size_guidance={"images": 0})
    acc.Reload()
    image = acc.Images("sweep/summary")[-1]
    assert image.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n" and (image.width, image.height) == (520, 380)
    assert "_hparams_/experiment" in acc.PluginTagToContent("hparams")


def test_the_summary_title_fits_its_figure(seeded):
    """520 px wide (a TensorBoard card): the title, replicates and n included, wraps inside it."""
    from cnnexp.sweeps.collect import collect
    from cnnexp.sweeps.plots import plot

    folder, _ = seeded
    figure = plot(folder, collect(folder), ["seed"])["sweep/summary"]
    figure.canvas.draw()
    title = figure._suptitle
    box = title.get_window_extent(figure.canvas.get_renderer())
    assert figure.bbox.width == 520 and "over seed (n = 2 each)" in title.get_text().replace("\n", " ")
    assert 0 <= box.x0 and box.x1 <= figure.bbox.width and 0 <= box.y0 and box.y1 <= figure.bbox.height, \
        f"title {box} outside the {figure.bbox.width}×{figure.bbox.height} canvas"


def test_hparams_hold_the_set_keys_as_numbers_and_no_unset_ones(seeded):
    from tensorboard.plugins.hparams import plugin_data_pb2

    folder, _ = seeded
    run = next(d for d in folder.iterdir() if d.is_dir() and d.name.startswith("pool=max"))
    acc = EventAccumulator(str(run))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["model.kernel_size"].number_value == 5 and hparams["data.batch_size"].number_value == 128
    assert hparams["model.pool"].string_value == "max" and "model.norm" not in hparams, "unset shortcuts left out"
    assert len(hparams) <= 16, sorted(hparams)
    assert "kernel_size: 5" in (run / "config.yaml").read_text().split("blocks:")[1]


def test_sweep_root_declares_the_swept_values(seeded):
    from tests.tensorboard_server import tensorboard

    folder, _ = seeded
    with tensorboard(folder) as tb:
        experiment = tb.post("/data/plugin/hparams/experiment", {"experimentName": ""})
    infos = {h["name"]: h for h in experiment["hparamInfos"]}
    assert sorted(infos["model.pool"]["domainDiscrete"]) == ["avg", "max"]
    assert sorted(infos["seed"]["domainDiscrete"]) == [1, 2] and infos["seed"]["type"] == "DATA_TYPE_FLOAT64"
    names = [h["name"] for h in experiment["hparamInfos"]]
    assert set(names[:2]) == {"model.pool", "seed"}, "the swept keys lead"
    assert "model.kernel_size" in names and "optimizer.lr" in names, "the rest follow"


@pytest.mark.slow  # the search test kills and resumes a sweep too (tests/test_search.py)
def test_a_killed_sweep_resumes_from_its_folder(tmp_path, shared_data, calibrated):
    out = tmp_path / "out"
    args = ["-m", "model.pool=max,avg,l2", *QUICK, "trainer.max_epochs=2", "trainer.limit_train_batches=40"]
    killed_after_epoch(args, out, "multirun/*/*/pool=avg/metrics.csv")  # the first run done, the second in its epoch 2
    folder = sweep_dir(out)
    first = folder / "pool=max"
    before = {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()}
    assert json.loads((first / "results.json").read_text())["status"] == "ok"
    assert json.loads((folder / "pool=avg" / "results.json").read_text())["status"] == "running"

    resumed = cli("train", "-m", f"resume={folder}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sweep_dir(out) == folder, "the same folder, no new sweep"
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()} == before, "not retrained"
    results = runs(folder)
    assert sorted(results) == ["pool=avg", "pool=l2", "pool=max"]
    assert all(r["status"] == "ok" and r["epochs"] == 2 for r in results.values())
    rows = list(csv.DictReader((folder / "pool=avg" / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["0", "1"], "the killed run continued from its checkpoint"
    summary = list(csv.DictReader((folder / "summary.csv").open()))
    assert sorted(r["run"] for r in summary) == ["pool=avg", "pool=l2", "pool=max"]


def test_resuming_a_folder_that_holds_no_sweep_is_refused(tmp_path, calibrated):
    (tmp_path / "not-a-sweep").mkdir()
    proc = cli("train", "-m", f"resume={tmp_path / 'not-a-sweep'}")
    assert proc.returncode == 2 and "not a sweep folder" in proc.stderr and "Traceback" not in proc.stderr


def test_fail_fast_refuses_a_grid_with_an_impossible_setting_before_launch(tmp_path, shared_data, calibrated):
    out = tmp_path / "out"
    proc = cli("train", "-m", "model.kernel_size=9,3", "model.stride=2", "sweep_options.fail_fast=true", *TINY,
               f"paths.output_dir={out}")
    assert proc.returncode == 2 and "refused before launch — kernel_size=9: block" in proc.stderr, proc.stderr[-2000:]
    assert "sweep_options.fail_fast=true" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() or not any(out.rglob("results.json")), "nothing launched, no run folder"
    proc = cli("train", "-m", "model.kernel_size=29,31", *TINY, f"paths.output_dir={out}")
    assert proc.returncode == 2 and "every setting of this grid is refused before launch — kernel_size=29: " \
        in proc.stderr, proc.stderr[-2000:]
    assert "; kernel_size=31: " in proc.stderr, "every refused setting is named, not only the first"
    assert not out.exists() or not any(out.rglob("*")), "a grid none of whose settings can work leaves no folder"


def test_a_sweep_folder_is_resumed_not_swept_into_and_keeps_its_first_record(seeded, tmp_path, calibrated):
    from cnnexp.core.locks import LOCK

    folder = tmp_path / "sweep"
    shutil.copytree(seeded[0], folder)
    first = (folder / "multirun.yaml").read_bytes()
    before = runs(folder)
    again = cli("train", "-m", "model.pool=max", *TINY, f"hydra.sweep.dir={folder}")
    assert again.returncode == 2 and f"-m resume={folder}" in again.stderr and "Traceback" not in again.stderr
    more = cli("train", "-m", f"resume={folder}", "model.pool=max,avg,l2")
    assert more.returncode == 2 and "would change the recorded sweep" in more.stderr, more.stderr[-2000:]
    # multirun.yaml stays as the first launch wrote it, so a resumed sweep resumes again
    # (twice, after faults, in tests/test_faults.py's slow sweep cells)
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    resumed = cli("train", "-m", f"resume={folder}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (folder / "multirun.yaml").read_bytes() == first
    assert runs(folder) == before and not (folder / LOCK).exists()
    assert "| pool=" in resumed.stdout, "the summary is printed"
    assert {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == files, \
        "a resume that ran nothing (every run had ended ok) leaves no .resume-<time>/, no rewritten summary"
    assert cli("check", str(folder)).returncode == 0


def test_summary_shows_a_killed_run_as_dead(seeded, tmp_path, calibrated):
    folder = tmp_path / "sweep"
    shutil.copytree(seeded[0], folder)
    run = next(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    record = json.loads((run / "results.json").read_text())
    (run / "results.json").write_text(json.dumps({**record, "status": "running"}))  # as SIGKILL leaves it
    proc = cli("summary", str(folder))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {r["run"]: r["status"] for r in csv.DictReader((folder / "summary_runs.csv").open())}[run.name] == "dead"
    (run / "results.json").write_text("[1, 2]")
    (folder / "multirun.yaml").write_text("hydra: [unclosed")
    proc = cli("summary", str(folder))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "multirun.yaml" in proc.stderr


@pytest.mark.slow  # 11 s of training; test-all runs it
def test_a_run_extended_by_hand_keeps_its_setting_and_is_noted(seeded, tmp_path, calibrated):
    """`resume=SWEEP/pool=max,seed=1 trainer.max_epochs=2`, the folder as the sweep named it: the
    run's record then holds the resume's overrides, and the summary reads its setting as its first
    launch's with the resume's change (no longer a replicate of 1-epoch pool=max), counts both
    launches' time and says it was extended."""
    folder = tmp_path / "sweep"
    shutil.copytree(seeded[0], folder)
    run = folder / "pool=max,seed=1"
    before = json.loads((run / "results.json").read_text())
    proc = cli("train", f"resume={run}", "trainer.max_epochs=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = json.loads((run / "results.json").read_text())
    assert after["epochs"] == 2 and after["extends"]["epochs"] == 1 and after["seconds"] > before["seconds"]
    proc = cli("summary", str(folder))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "note: extended by a resume after the sweep: pool=max,seed=1 (1 → 2 epochs)" in proc.stdout, proc.stdout
    settings = {r["setting"]: r for r in csv.DictReader((folder / "summary.csv").open())}
    assert set(settings) == {"pool=max,max_epochs=1", "pool=max,max_epochs=2", "pool=avg,max_epochs=1"}, settings
    assert "resume=" not in proc.stdout.split("on its own:")[-1]
