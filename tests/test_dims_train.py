"""Training in one and three dimensions end to end, through the real commands: a 1-D network on a
real UCR set (then predict on a .ts file, eval, export with parity), a sweep over a 1-D kernel with
its summary, a 16³ volume folder, sequential MNIST and Moving MNIST. All slow (test-all)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import SHARED_DATA, cli, only_run_dir
from tests.ucr_data import ucr

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("calibrated")]
QUIET = ["callbacks.progress_bar_refresh=0", "callbacks.views.every_n_epochs=100"]


def results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


def test_a_1d_network_learns_gunpoint_and_predicts_a_ts_file(tmp_path):
    folder = ucr("GunPoint")
    proc = cli("train", "data=series", f"data.root={folder}", "trainer.max_epochs=15", *QUIET,
               f"paths.output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = only_run_dir(tmp_path)
    assert results(run)["test_acc"] > 0.7  # chance is 0.5
    lines = (folder / "GunPoint_TEST.ts").read_text().splitlines()
    start = lines.index("@data") + 1
    (tmp_path / "few.ts").write_text("\n".join(lines[:start] + lines[start:start + 6]) + "\n")
    got = cli("predict", f"run={run}", f"inputs={tmp_path / 'few.ts'}", "json=true")
    assert got.returncode == 0, got.stderr[-2000:]
    answers = json.loads(got.stdout)
    assert len(answers) == 6 and all(a["class"] in ("1", "2") and a["label"] in ("1", "2") for a in answers)
    assert sum(a["class"] == a["label"] for a in answers) >= 4
    refused = cli("predict", f"run={run}", f"images={tmp_path / 'few.ts'}")
    assert refused.returncode == 2 and "inputs=FILE" in refused.stderr
    exported = cli("export", f"run={run}")
    assert exported.returncode == 0 and "0 of 150 predictions differ" in exported.stdout + exported.stderr


def test_a_sweep_over_a_1d_kernel_and_its_summary(tmp_path):
    proc = cli("train", "-m", "data=series", f"data.root={ucr('GunPoint')}", "model.kernel_size=3,7",
               "trainer.max_epochs=2", *QUIET, f"paths.output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = next(tmp_path.glob("multirun/*/*"))
    summary = cli("summary", str(sweep))
    assert summary.returncode == 0 and "kernel_size=3" in summary.stdout and "kernel_size=7" in summary.stdout
    assert "failed" not in summary.stdout


def test_a_kernel_longer_than_a_short_series_is_one_line(tmp_path):
    proc = cli("train", "data=series", f"data.root={ucr('ItalyPowerDemand')}", "model.kernel_size=7",
               f"paths.output_dir={tmp_path}")
    assert proc.returncode == 2 and "larger than its padded input" in proc.stderr and not any(tmp_path.rglob("*.json"))


def test_a_16_cubed_volume_folder_trains_in_15_epochs(tmp_path):
    rng = np.random.default_rng(0)
    z, y, x = np.indices((16, 16, 16))
    for c in ("ball", "cube"):  # a bright ball or cube of about the same volume, somewhere inside, in noise
        (tmp_path / "vol" / c).mkdir(parents=True)
        for i in range(40):
            v = 0.5 * rng.normal(size=(16, 16, 16)).astype(np.float32)
            d = [axis - centre for axis, centre in zip((z, y, x), rng.integers(5, 11, 3))]
            inside = sum(a ** 2 for a in d) <= 16 if c == "ball" else np.logical_and.reduce([abs(a) <= 3 for a in d])
            np.save(tmp_path / "vol" / c / f"{i}.npy", v + 2.0 * inside)
    proc = cli("train", "data=volumes", f"data.root={tmp_path / 'vol'}", "data.val_fraction=0.2",
               "data.test_fraction=0.2", "data.batch_size=8", "trainer.max_epochs=15", *QUIET,
               f"paths.output_dir={tmp_path / 'out'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert results(only_run_dir(tmp_path / "out"))["test_acc"] > 0.7


@pytest.mark.parametrize("data", [["data=seqmnist", "data.permute=true"],
                                  ["data=moving_mnist", "data.train_clips=256", "data.val_clips=64", "data.test_clips=64"]])
def test_seqmnist_and_moving_mnist_train(tmp_path, data):
    proc = cli("train", *data, f"data.root={SHARED_DATA}", "trainer.max_epochs=1", "trainer.limit_train_batches=8",
               "trainer.limit_val_batches=2", "trainer.limit_test_batches=2", *QUIET, f"paths.output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert results(only_run_dir(tmp_path))["status"] == "ok"
