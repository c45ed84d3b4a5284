"""The benchmark runs end to end (its numbers are reported, not asserted), and DDP splits the work."""

from __future__ import annotations

import csv
import json
import re

import pytest

from tests.helpers import QUICK, cli, only_run_dir

pytestmark = pytest.mark.usefixtures("calibrated")  # its tests start runs


@pytest.mark.slow  # the bench is measured by running it (make bench); here: it prints every figure
def test_bench_reports_every_measure_and_ratio(shared_data):
    """Every figure is printed; the recipes run a handful of steps here (their overrides apply)."""
    proc = cli("bench", f"data.root={shared_data}", "rounds=1", "steps=3", "warmup=1", "startup=true", "peak=true",
               "imports=true", "first_seed=1001",
               "sweep=false", "seeds=2", "recipes=speedrun", "trainer.limit_train_batches=4",
               "trainer.limit_val_batches=1", "trainer.limit_test_batches=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    measured = {  # each figure's label with its number: a measure that printed no number fails
        "images/s": r"^  (a notebook loop|b plain loop|c cnnexp|d cnnexp, bf16-mixed)\b.*?\s([\d,]+)\s+\(",
        "ratio": r"(c/a|c/b|d/c) = (\d+\.\d+)",
        "startup": r"launch → first training step .*?: cnnexp (\d+\.\d+) s",
        "memory": r"peak memory of a 2-epoch default run: cnnexp ([\d,]+) MB",
    }
    for what, pattern in measured.items():
        found = re.findall(pattern, out, flags=re.M)
        numbers = [float(str(f[-1] if isinstance(f, tuple) else f).replace(",", "")) for f in found]
        assert numbers and all(n > 0 for n in numbers), (what, out)
    assert len(re.findall(measured["images/s"], out, flags=re.M)) == 4 and len(re.findall(measured["ratio"], out)) == 3
    assert "time to 99.2 % test accuracy, seeds 1001–1002" in out and "speedrun, seeds 1001–1002 (2 of 2 finished)" in out
    assert re.search(r"^  speedrun \(model=speed\) +bf16 +256 +[\d,]+ +[\d.]+ +\d+% +\d+%$", out, flags=re.M), out
    assert re.search(r"^  lightning +\d+\.\d\d +\S", out, flags=re.M), out  # the import profile's subtrees
    assert re.search(r"speedrun .*\(n=2\).*0/2", out), out
    as_run = out.split("each recipe as a user runs it")[-1]  # one cnnexp.train per seed: mean ± sd of what it recorded
    assert re.search(r"^  speedrun +\d+\.\d\d ± \d+\.\d\d \(n=2\) +\d+\.\d\d ± \d+\.\d\d \(n=2\) +\d+\.\d\d +"
                     r"\d+\.\d ± \d+\.\d \(n=2\)", as_run, flags=re.M), out


def test_bench_refuses_a_peer_that_is_not_the_template(tmp_path):
    proc = cli("bench", f"peer={tmp_path}", "rounds=0", "startup=false", "sweep=false", "accuracy=false")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("cnnexp: error: peer=") and "lightning-hydra-template" in proc.stderr


@pytest.mark.parametrize("option", ["seeds=0", "first_seed=-3"])
def test_bench_refuses_seeds_it_cannot_run_before_measuring(option):
    proc = cli("bench", option, "rounds=0", "startup=false", "sweep=false")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"cnnexp: error: {option}"), proc.stderr


@pytest.mark.slow
def test_sweep_split_is_reported(shared_data):
    proc = cli("bench", f"data.root={shared_data}", "rounds=0", "startup=false", "accuracy=false",
               "trainer.limit_val_batches=2", "trainer.limit_test_batches=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for words in ("4-run sweep: sequential", "per job of a sequential 4-run sweep", "evaluation as before #18",
                  "train steps", "validation", "views", "checkpoints", "launch share", "outside training steps"):
        assert words in proc.stdout, proc.stdout


def test_speedrun_composes_builds_and_trains(tmp_path, shared_data):
    out = tmp_path / "out"
    proc = cli("train", "experiment=speedrun", *QUICK, "trainer.limit_train_batches=5", f"paths.output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((only_run_dir(out) / "results.json").read_text())
    assert results["status"] == "ok" and results["train_s"] > 0 and results["epochs"] == 2
    assert set(results["timing"]) == {"data_s", "train_steps_s", "validation_s", "test_s", "views_s", "checkpoints_s"}
    reached = [s for s in results["time_to"].values() if s is not None]  # 5 batches an epoch: maybe none
    assert set(results["time_to"]) == {"99.0", "99.2", "99.4", "99.5"} and all(0 < s <= results["train_s"] for s in reached)
    assert results["best"] < 0.99 or results["time_to"]["99.0"] is not None, "reached 99.0 %, so it was timed"
    config = (only_run_dir(out) / "config.yaml").read_text()
    assert "name: speed" in config and "label_smoothing: 0.1" in config
    assert "pool_first: true" in config and "shift: 1" in config and "init: zero" in config  # its tricks (#29)
    rows = [l.split()[1] for l in (only_run_dir(out) / "shapes.txt").read_text().splitlines() if l.startswith("block2")]
    assert rows == ["conv", "maxpool", "batchnorm"], rows  # pooled before its norm


@pytest.mark.slow  # DDP end to end runs in tests/test_slurm.py too (ranks from srun); the shares test stays
def test_ddp_on_two_cpu_processes(tmp_path, shared_data, quick_run):
    out = tmp_path / "out"
    proc = cli("train", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", *QUICK,
               f"paths.output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = only_run_dir(out)
    results = json.loads((run_dir / "results.json").read_text())
    single = json.loads((quick_run[0] / "results.json").read_text())
    assert results["status"] == "ok" and results["epochs"] == 2
    # each rank took 40 batches of its half: twice the images per step, same number of steps
    assert results["test_acc"] > 0.6 and abs(results["test_acc"] - single["test_acc"]) < 0.1, (results, single)


@pytest.mark.slow  # two DDP processes (16 s); the default run's sampler cells are in tests/test_data.py
def test_ddp_ranks_draw_disjoint_shares_that_cover_the_split(tmp_path, shared_data):
    import subprocess
    import sys

    from tests.helpers import PROJECT

    out = tmp_path / "indices.json"
    proc = subprocess.run([sys.executable, str(PROJECT / "tests" / "ddp_epoch_indices.py"), str(shared_data), str(out)],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["world_size"] == 2 and len(report["epochs"]) == 2
    for shares in report["epochs"]:
        a, b = (set(s) for s in shares)
        assert len(a) == len(b) == report["split"] // 2
        assert not a & b and a | b == set(range(report["split"]))
    assert report["epochs"][0] != report["epochs"][1], "each epoch has its own order"


def test_the_import_profile_names_each_module_and_who_imported_it():
    """bench imports=true reads `python -X importtime`: a real profile of `import json` gives
    json.decoder's importer as json, and the packages' own seconds add up to the whole."""
    import subprocess
    import sys

    from cnnexp.bench.imports import by_package, parse_importtime

    stderr = subprocess.run([sys.executable, "-X", "importtime", "-c", "import json"], capture_output=True, text=True).stderr
    nodes = {name: (own, cumulative, importer) for name, own, cumulative, importer in parse_importtime(stderr)}
    assert nodes["json.decoder"][2] == "json" and nodes["json"][2] == ""
    assert nodes["json"][1] >= nodes["json.decoder"][1] > 0
    packages = by_package(parse_importtime(stderr))
    assert packages["json"][1] == "(the command)" and packages["re"][1] == "json"
    assert sum(s for s, _ in packages.values()) == pytest.approx(sum(own for own, _, _ in nodes.values()))


def test_a_record_states_medians_the_lowest_seed_and_the_share_at_target():
    from cnnexp.bench.recipes import record_lines

    runs = [{"test_acc": a, "train_s": t, "wall_s": w} for a, t, w in
            ((0.9925, 3.0, 8.0), (0.9915, 4.0, 9.0), (0.9930, 3.5, 7.0), (None, None, 20.0))]
    text = "\n".join(record_lines("speedrun", runs, range(1001, 1005)))
    assert "seeds 1001–1004 (3 of 4 finished)" in text
    assert "train_s          median 3.50 s" in text and "whole process    median 8.00 s" in text
    assert "lowest 99.15 %" in text and "2/3 seeds ≥ 99.2 %" in text


@pytest.mark.slow
def test_training_metrics_logged_every_n_steps_are_the_exact_epoch_means(tmp_path):
    """Task.log_train logs a point every trainer.log_every_n_steps (Lightning's self.log costs ~1 ms
    a call): the epoch's train/loss and train/acc are those of logging every step, the same run."""
    for extra in ([], ["trainer.max_steps=27"], ["trainer.accumulate_grad_batches=3"]):  # ends mid-epoch; micro-batches
        rows = {}
        for every in (1, 7):
            out = tmp_path / f"{every}-{len(extra)}-{extra[:1]}".replace("/", "")
            proc = cli("train", *QUICK, "trainer.limit_train_batches=20", f"trainer.log_every_n_steps={every}",
                       "test_after_fit=false", f"paths.output_dir={out}", *extra)
            assert proc.returncode == 0, proc.stderr[-2000:]
            with (only_run_dir(out) / "metrics.csv").open() as f:
                rows[every] = list(csv.DictReader(f))
        assert len(rows[1]) == len(rows[7]) == 2, (extra, rows)
        for each, sparse in zip(rows[1], rows[7]):
            for key in ("train/loss", "train/acc"):
                assert float(sparse[key]) == pytest.approx(float(each[key]), rel=1e-5), (extra, key, each, sparse)
