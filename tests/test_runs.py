"""Coming back to a run: eval and predict from its folder alone, resume after SIGKILL,
identical metrics from the same seed, and clear messages for bad folders and files."""

from __future__ import annotations

import csv
import json
import os
import re
import signal

import pytest
import torch
from PIL import Image, ImageOps

from tests.helpers import QUICK, cli, only_run_dir, start, wait_for_epoch

pytestmark = pytest.mark.usefixtures("calibrated")  # its tests start runs


def test_eval_reproduces_the_logged_test_accuracy(quick_run):
    run_dir, _ = quick_run
    logged = json.loads((run_dir / "results.json").read_text())
    proc = cli("eval", f"run={run_dir}", "json=true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["checkpoint"].endswith("best.ckpt")
    assert result["test/acc"] == pytest.approx(logged["test_acc"], abs=1e-6)
    assert result["test/loss"] == pytest.approx(logged["test_loss"], abs=1e-5)
    from omegaconf import OmegaConf

    batch = OmegaConf.load(run_dir / "config.yaml").data.eval_batch_size
    assert (result["images"], result["images_in_split"]) == (2 * batch, 10_000)  # QUICK: limit_test_batches=2
    from cnnexp.eval import heading

    assert f"as the run evaluated it: {2 * batch:,} of its 10,000 images" in heading(result)
    assert "full=true evaluates all" in heading(result)


def test_eval_full_tests_the_whole_split(quick_run, shared_data):
    """The quick run tested 2 batches; full=true every test image, as the network itself scores them."""
    import torch

    from cnnexp.data.mnist import load_split, to_float
    from cnnexp.eval import EvalArgs, evaluate
    from cnnexp.run.restore import load_task

    result = evaluate(EvalArgs(run=str(quick_run[0]), full=True))
    assert result["images"] == result["images_in_split"] == 10_000
    task, _ = load_task(str(quick_run[0]), None)
    images, labels = load_split(shared_data, train=False)
    with torch.no_grad():
        right = sum(int((task(to_float(x, True)).argmax(1) == y).sum()) for x, y in zip(images.split(1000), labels.split(1000)))
    assert result["full"] and result["test/acc"] == pytest.approx(right / len(labels), abs=1e-6)


@pytest.mark.slow  # 13 s of predictions; test-all runs it
def test_predict_reads_saved_digits_of_any_size_and_polarity(quick_run, shared_data, tmp_path):
    from cnnexp.data.mnist import load_split, to_float
    from cnnexp.run.restore import load_task

    run_dir, _ = quick_run
    task, _ = load_task(str(run_dir), None)
    images, labels = load_split(shared_data, train=False)
    with torch.no_grad():
        probs = torch.softmax(task(to_float(images[:200], True)), 1)
    confident = [i for i in range(200) if probs[i].argmax() == labels[i] and probs[i].max() > 0.9][:4]
    assert len(confident) == 4
    expected = {}
    for i in confident:
        digit = Image.fromarray(images[i, 0].numpy())
        for name, im in ((f"small{i}.png", digit), (f"large{i}.png", digit.resize((300, 300))),
                         (f"inverted{i}.jpg", ImageOps.invert(digit.resize((64, 64))).convert("RGB"))):
            im.save(tmp_path / name)
            expected[str(tmp_path / name)] = int(labels[i])
    proc = cli("predict", f"run={run_dir}", f"images={tmp_path}/*", "json=true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = {r["file"]: r["digit"] for r in json.loads(proc.stdout)}
    assert got == expected
    text = cli("predict", f"run={run_dir}", f"images={tmp_path}/small*")
    assert text.returncode == 0 and "→" in text.stdout and "%" in text.stdout


@pytest.mark.slow  # SIGKILL then resume is also covered inside a sweep (test_sweep_records)
def test_kill_mid_epoch_then_resume_ends_with_the_configured_epochs(tmp_path, shared_data):
    out = tmp_path / "out"
    args = [*QUICK, "trainer.max_epochs=3", "trainer.limit_train_batches=80", f"paths.output_dir={out}"]
    proc = start(args[:-1], out)  # args end with paths.output_dir, which start() adds
    try:
        wait_for_epoch(out, proc)  # epoch 0 done, well into epoch 1
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    run_dir = only_run_dir(out)
    assert json.loads((run_dir / "results.json").read_text())["status"] == "running"

    resumed = cli("train", f"resume={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert only_run_dir(out) == run_dir, "a resume continues in the same folder"
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "ok" and results["epochs"] == 3
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    assert [int(e.step) for e in acc.Scalars("epoch/val_acc")][-3:] == [79, 159, 239], "one TensorBoard run, steps continue"


@pytest.mark.slow
def test_same_seed_same_metrics(tmp_path, shared_data):
    runs = []
    for n in range(2):
        out = tmp_path / f"out{n}"
        proc = cli("train", *QUICK, "trainer.max_epochs=1", "trainer.limit_train_batches=20", "seed=5",
                   "trainer.deterministic=true", f"paths.output_dir={out}")
        assert proc.returncode == 0, proc.stderr[-2000:]
        run_dir = only_run_dir(out)
        row = next(csv.DictReader((run_dir / "metrics.csv").open()))
        runs.append({k: v for k, v in row.items() if "time" not in k and "images_per_s" not in k})
        assert "seed: 5" in (run_dir / "config.yaml").read_text()
    assert runs[0] == runs[1]


@pytest.mark.parametrize("make_bad, words", [
    (lambda d: d / "missing", "no such folder"),
    pytest.param(lambda d: (d / "empty").mkdir() or d / "empty", "not a run folder", marks=pytest.mark.slow),  # and a sweep's: below
])
def test_bad_run_folders(tmp_path, make_bad, words):
    bad = make_bad(tmp_path)
    Image.new("L", (28, 28)).save(tmp_path / "x.png")
    for module, extra in (("eval", []), ("predict", [f"images={tmp_path / 'x.png'}"])):
        proc = cli(module, f"run={bad}", *extra)
        assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("train", f"resume={bad}")
    assert proc.returncode == 2 and words in proc.stderr and f"resume={bad}" in proc.stderr


def _sweep_of_two(folder):
    """A multirun folder's shape: run folders (named key=value,…) holding config.yaml."""
    for name in ("kernel_size=3,seed=1", "kernel_size=5,seed=1"):
        (folder / "sweep" / name).mkdir(parents=True)
        (folder / "sweep" / name / "config.yaml").write_text("seed: 1\n")
    return folder / "sweep"


def test_a_sweep_folder_names_a_run_that_works_as_printed(tmp_path):
    """eval/predict/export/resume given a sweep: one line naming one of its runs, as an argument
    that, `=` in the run's name and all, is read back as that run's folder."""
    from cnnexp.config import args as cli_args
    from cnnexp.core.errors import RunError
    from cnnexp.eval import EvalArgs
    from cnnexp.records.folder import open_run

    sweep = _sweep_of_two(tmp_path)
    proc = cli("eval", f"run={sweep}")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "a sweep of 2 runs, not a run; pass one of them, e.g. " in proc.stderr
    suggested = proc.stderr.strip().rsplit("e.g. ", 1)[1]
    assert open_run(cli_args.parse(EvalArgs, [suggested]).run) == sweep / "kernel_size=3,seed=1"
    with pytest.raises(RunError, match=re.escape(f"continue the whole sweep: python -m cnnexp.train -m resume={sweep})")):
        open_run(str(sweep), key="resume")


@pytest.mark.slow  # default run: truncated and foreign checkpoints on resume (tests/test_bad_input.py)
def test_truncated_and_foreign_checkpoints(quick_run, tmp_path):
    run_dir, _ = quick_run
    truncated = tmp_path / "truncated.ckpt"
    data = (run_dir / "checkpoints" / "best.ckpt").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    for path, words in ((truncated, "not a whole checkpoint"), (foreign, "not a cnnexp checkpoint"),
                        (tmp_path / "absent.ckpt", "no such file")):
        proc = cli("eval", f"ckpt={path}")
        assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_unreadable_image_and_unknown_argument(quick_run, tmp_path):
    run_dir, _ = quick_run
    (tmp_path / "broken.png").write_text("not an image")
    proc = cli("predict", f"run={run_dir}", f"images={tmp_path / 'broken.png'}")
    assert proc.returncode == 2 and "broken.png: not a readable image" in proc.stderr
    proc = cli("eval", f"run={run_dir}", "splt=val")
    assert proc.returncode == 2 and "splt" in proc.stderr and "did you mean split" in proc.stderr


@pytest.mark.slow
def test_last_ckpt_is_the_last_epoch_even_without_a_new_best(tmp_path, calibrated):
    """A learning rate too small to move the weights, the best chosen by training loss (which
    then only follows the batches each epoch draws): epoch 2 is no new best, and last.ckpt must
    still hold it (Lightning 2.6 wrote it only with a new best), so a resume goes on from there
    instead of training it again. (By val/acc the three epochs would tie, and a tie goes to the
    later epoch: every epoch a new best.)"""
    out = tmp_path / "out"
    proc = cli("train", *QUICK, "trainer.max_epochs=3", "trainer.limit_train_batches=3", "optimizer.lr=1e-12",
               "callbacks.checkpoint.monitor=train/loss", f"paths.output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = only_run_dir(out)
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    best = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert best["epoch"] < 2 and last["epoch"] == 2, (best["epoch"], last["epoch"])
    resumed = cli("train", f"resume={run}", "trainer.max_epochs=4")
    assert resumed.returncode == 0 and "the 1 epoch left of 4" in resumed.stdout, resumed.stdout[-2000:]
    epochs = [row["epoch"] for row in csv.DictReader((run / "metrics.csv").open())]
    assert epochs == ["0", "1", "2", "3"], epochs
