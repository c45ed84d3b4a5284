"""A short real training run on MNIST, end to end through `python -m cnnexp.train`."""

from __future__ import annotations

import csv
import io
import json

import pytest
import yaml
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import QUICK, cli, only_run_dir


def scalars(run_dir):
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_short_run_learns_and_reports(quick_run):
    run_dir, proc = quick_run
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "ok"
    assert results["test_acc"] > 0.6, "80 steps of Adam must be far above chance (0.1)"
    assert results["params"] == 1_379_557 and results["epochs"] == 2
    assert f"test accuracy: {100 * results['test_acc']:.2f} %" in proc.stderr + proc.stdout


def test_run_folder_holds_config_table_csv_and_checkpoints(quick_run):
    run_dir, _ = quick_run
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["trainer"]["max_epochs"] == 2 and "${" not in (run_dir / "config.yaml").read_text()
    assert "1,379,557" in (run_dir / "shapes.txt").read_text()
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert all(0 <= float(r["val/acc"]) <= 1 and float(r["train/loss"]) > 0 for r in rows)
    assert {p.name for p in (run_dir / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}
    assert (run_dir / ".hydra" / "config.yaml").exists() and (run_dir / "train.log").exists()


def test_tensorboard_events_hold_train_val_test_metrics(quick_run):
    run_dir, _ = quick_run
    found = scalars(run_dir)
    for tag in ("train/loss_step", "train/acc_step", "epoch/train_loss", "train/acc_epoch",
                "epoch/val_loss", "epoch/val_acc", "test/loss", "test/acc"):  # cnnexp.tracking.board's tags
        assert tag in found, f"{tag} missing from {sorted(found)}"
    assert len(found["epoch/val_acc"]) == 2 and all(0 <= v <= 1 for v in found["epoch/val_acc"])
    results = json.loads((run_dir / "results.json").read_text())
    assert abs(found["test/acc"][-1] - results["test_acc"]) < 1e-6


@pytest.mark.slow
def test_runs_from_another_working_directory(tmp_path, shared_data, calibrated):
    """conf/ is found wherever the command is started."""
    out = tmp_path / "out"
    proc = cli("train", *QUICK, "trainer.max_epochs=1", "trainer.limit_train_batches=5",
               "test_after_fit=false", f"paths.output_dir={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((only_run_dir(out) / "results.json").read_text())["status"] == "ok"


def test_tensorboard_views_are_written(quick_run):
    run_dir, _ = quick_run
    acc = EventAccumulator(str(run_dir), size_guidance={"images": 0, "tensors": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    for tag in ("test/mistakes", "test/confusion_matrix", "filters/block1", "layer_arithmetic/block1_conv", "layer_arithmetic/block3_maxpool",
                "features/block1", "features/block2", "features/block3"):
        assert tag in tags["images"], f"{tag} missing from {tags['images']}"
    filters = acc.Images("filters/block1")
    assert len(filters) == 2, "one filter grid per epoch"
    assert (filters[-1].width, filters[-1].height) == (8 * 4 + 1, 4 * 4 + 1), "32 3×3 filters, 8 per row"
    assert acc.Images("features/block1")[-1].width == 8 * 15 + 1, "8 channels of 14×14 maps per row"
    assert acc.Images("test/confusion_matrix")[-1].width >= 300
    sheet = acc.Images("layer_arithmetic/block1_conv")[-1]  # logged as the PNG it is drawn as (views.add_png)
    with Image.open(io.BytesIO(sheet.encoded_image_string)) as png:
        assert png.format == "PNG" and png.size == (sheet.width, sheet.height) and sheet.width > 1000
    assert {"run/config/text_summary", "run/shapes/text_summary"} <= set(tags["tensors"])
    for tag in ("epoch/lr", "time/epoch_s", "train/images_per_s"):
        assert tag in tags["scalars"]
    assert all(v.value > 0 for v in acc.Scalars("train/images_per_s"))


def test_the_learning_rate_is_charted_with_its_epoch(quick_run):
    """epoch/lr: one point per epoch at the step of the epoch's loss and accuracy (not the step
    before the epoch began, 0 for epoch 0), the value metrics.csv holds and config.yaml set."""
    run_dir, _ = quick_run
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    steps = {tag: [s.step for s in acc.Scalars(tag)] for tag in ("epoch/lr", "epoch/val_acc", "epoch/train_loss")}
    assert steps["epoch/lr"] == steps["epoch/val_acc"] == steps["epoch/train_loss"], steps
    assert len(steps["epoch/lr"]) == 2 and steps["epoch/lr"][0] > 0
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    lr = float(yaml.safe_load((run_dir / "config.yaml").read_text())["optimizer"]["lr"])
    charted = [s.value for s in acc.Scalars("epoch/lr")]
    assert charted == pytest.approx([float(r["lr-Adam"]) for r in rows]) and charted == pytest.approx([lr, lr])


def test_real_tensorboard_serves_the_run(quick_run):
    from tests.tensorboard_server import tensorboard

    run_dir, _ = quick_run
    with tensorboard(run_dir.parent.parent) as tb:
        name = f"{run_dir.parent.name}/{run_dir.name}"
        assert name in tb.runs()
        scalars = tb.get("/data/plugin/scalars/tags")[name]
        assert {"train/loss_step", "epoch/val_acc", "test/acc", "run/test_acc"} <= set(scalars)
        images = tb.get("/data/plugin/images/tags")[name]
        assert {"test/mistakes", "test/confusion_matrix", "filters/block1", "features/block3"} <= set(images)
        series = tb.get(f"/data/plugin/images/images?run={name}&tag=test/mistakes&sample=0")
        blob = tb.get("/data/plugin/images/" + series[-1]["query"].join(["individualImage?", ""]))
        assert blob[:8] == b"\x89PNG\r\n\x1a\n"
        experiment = tb.post("/data/plugin/hparams/experiment", {"experimentName": ""})
        names = {h["name"] for h in experiment["hparamInfos"]}
        assert {"model.name", "optimizer.lr", "trainer.max_epochs"} <= names and len(names) <= 16, names


@pytest.mark.slow  # convae's plan, network and monitor are checked in-process (test_models, test_best)
def test_convae_reconstructs_and_its_loss_falls(tmp_path, shared_data, calibrated):
    out = tmp_path / "out"
    proc = cli("train", "model=convae", *QUICK, "trainer.max_epochs=3", "trainer.limit_train_batches=30",
               f"paths.output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = only_run_dir(out)
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    losses = [float(r["val/loss"]) for r in rows]
    assert len(losses) == 3 and losses[-1] < 0.8 * losses[0], losses
    acc = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    acc.Reload()
    grid = acc.Images("reconstructions/input_above_output")[-1]
    assert (grid.width, grid.height) == (8 * 29 + 1, 2 * 29 + 1), "8 inputs above 8 reconstructions, 28×28 each"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "ok" and results["test_loss"] < losses[0]


@pytest.mark.parametrize("overrides", [pytest.param(["model.norm=batch", "model.activation=gelu"], marks=pytest.mark.slow),
                                       pytest.param(["model.blocks.1.groups=32", "model.blocks.2.groups=64",
                                                     "model.blocks.1.dilation=2"], marks=pytest.mark.slow)],
                         ids=["batchnorm-gelu", "depthwise-dilated"])
def test_block_options_train(tmp_path, shared_data, overrides, calibrated):
    out = tmp_path / "out"
    proc = cli("train", *overrides, *QUICK, "trainer.max_epochs=1", "trainer.limit_train_batches=30",
               f"paths.output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = only_run_dir(out)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "ok" and results["test_acc"] > 0.3, results
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert "conv" in (run_dir / "shapes.txt").read_text() and config["model"]["blocks"]
    acc = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    acc.Reload()
    assert {"receptive_field/block1", "receptive_field/block3"} <= set(acc.Tags()["images"])
