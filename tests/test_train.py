"""A short real training run on MNIST, end to end through `python -m cnnexp.train`."""

from __future__ import annotations

import csv
import json

import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import QUICK, cli, only_run_dir


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
    for tag in ("train/loss_step", "train/acc_step", "train/loss_epoch", "train/acc_epoch",
                "val/loss", "val/acc", "test/loss", "test/acc"):
        assert tag in found, f"{tag} missing from {sorted(found)}"
    assert len(found["val/acc"]) == 2 and all(0 <= v <= 1 for v in found["val/acc"])
    results = json.loads((run_dir / "results.json").read_text())
    assert abs(found["test/acc"][-1] - results["test_acc"]) < 1e-6


def test_runs_from_another_working_directory(tmp_path, shared_data):
    """conf/ is found wherever the command is started."""
    out = tmp_path / "out"
    proc = cli("train", *QUICK, "trainer.max_epochs=1", "trainer.limit_train_batches=5",
               "test_after_fit=false", f"paths.output_dir={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((only_run_dir(out) / "results.json").read_text())["status"] == "ok"
