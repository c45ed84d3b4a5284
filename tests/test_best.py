"""What "best" means is decided once — monitor and mode, by the settings check — and every reader
(checkpoint, search, summary) follows that record."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from cnnexp.config import settings as config
from cnnexp.config.compose import compose_config
from cnnexp.sweeps import tables as summary
from cnnexp.search.study import objective
from tests.helpers import QUICK, cli, only_run_dir


@pytest.mark.parametrize("overrides, expected", [
    ([], ("val/acc", "max")),
    (["callbacks.checkpoint.monitor=val/loss"], ("val/loss", "min")),
    (["callbacks.checkpoint.monitor=train/acc"], ("train/acc", "max")),
    (["callbacks.checkpoint.monitor=val/loss", "callbacks.checkpoint.mode=max"], ("val/loss", "max")),
    (["model=convae"], ("val/loss", "min")),
])
def test_monitor_and_mode_are_resolved_once_and_the_search_follows(overrides, expected):
    composed = compose_config(overrides)
    ck = config.load(composed).callbacks.checkpoint
    assert (ck.monitor, ck.mode) == expected
    assert objective(composed) == (expected[0], "maximize" if expected[1] == "max" else "minimize")


@pytest.mark.slow  # a 15 s training; the default run keeps the resolution of "best" (above) and the summary's ranking
def test_a_val_loss_run_keeps_the_epoch_of_the_lowest_loss(tmp_path, shared_data, calibrated):
    proc = cli("train", *QUICK, "trainer.max_epochs=3", "trainer.limit_train_batches=15", "optimizer.lr=3e-3",
               "callbacks.checkpoint.monitor=val/loss", "test_after_fit=false",
               *(f"callbacks.views.{v}=false" for v in ("feature_maps", "filters", "arithmetic", "mistakes",
                                                           "confusion_matrix", "receptive_field", "text")),
               f"paths.output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = only_run_dir(tmp_path)
    results = json.loads((run / "results.json").read_text())
    losses = [float(r["val/loss"]) for r in csv.DictReader((run / "metrics.csv").open())]
    lowest = min(range(len(losses)), key=losses.__getitem__)
    assert (results["monitor"], results["mode"]) == ("val/loss", "min")
    assert results["best_epoch"] == lowest and results["best"] == pytest.approx(losses[lowest], abs=1e-6)
    saved = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert saved["epoch"] == lowest, f"best.ckpt holds epoch {saved['epoch']}, val/loss per epoch {losses}"
    assert "val/loss" in (run / "config.yaml").read_text() and "mode: min" in (run / "config.yaml").read_text()


def test_a_tie_on_the_monitor_goes_to_the_later_epoch(tmp_path, shared_data, calibrated):
    """Weights that cannot move (lr 1e-30) validate alike every epoch: best.ckpt is the last of the
    tied epochs, not the first (a one-cycle's tie would otherwise test half-trained weights)."""
    proc = cli("train", *QUICK, "trainer.max_epochs=3", "trainer.limit_train_batches=2", "optimizer.lr=1e-30",
               "test_after_fit=false", *(f"callbacks.views.{v}=false" for v in (
                   "feature_maps", "filters", "arithmetic", "mistakes", "confusion_matrix", "receptive_field", "text")),
               f"paths.output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = only_run_dir(tmp_path)
    accs = [r["val/acc"] for r in csv.DictReader((run / "metrics.csv").open())]
    assert len(accs) == 3 and len(set(accs)) == 1, accs  # a tie, three times
    assert json.loads((run / "results.json").read_text())["best_epoch"] == 2
    assert torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)["epoch"] == 2


def _row(run, kernel, seed, loss, status="ok"):
    return {"run": run, "status": status, "monitor": "val/loss", "mode": "min", "best_val_loss": loss,
            "overrides": [f"model.kernel_size={kernel}", f"seed={seed}", "trainer.max_epochs=2"]}


def test_the_summary_ranks_by_the_recorded_monitor_and_picks_the_best_mean(capsys):
    # kernel 5 has the luckiest seed (0.10) but kernel 3 the better mean (0.20 vs 0.30)
    rows = [_row("k3s1", 3, 1, 0.21), _row("k3s2", 3, 2, 0.19), _row("k3s3", 3, 3, 0.20),
            _row("k5s1", 5, 1, 0.10), _row("k5s2", 5, 2, 0.40), _row("k5s3", 5, 3, 0.40),
            _row("k7s1", 7, 1, None, status="failed")]
    _, friendly, _ = summary.run_table(rows)
    assert [r[0] for r in friendly][:2] == ["k5s1", "k3s2"] and friendly[-1][0] == "k7s1", "lowest loss first"
    _, grouped, _ = summary.group_table(rows, ["seed"])
    assert grouped[0][0] == "kernel_size=3"
    name, command = summary.best_setting(rows, ["seed"])
    assert name.startswith("kernel_size=3") and command == ["model.kernel_size=3", "trainer.max_epochs=2"]
    summary.print_best(rows, ["seed"])
    assert "best setting: kernel_size=3 (mean of 3), by best_val_loss (min)" in capsys.readouterr().out
