"""Coming back to a run: eval and predict from its folder alone, resume after SIGKILL,
identical metrics from the same seed, and clear messages for bad folders and files."""

from __future__ import annotations

import csv
import json
import os
import signal

import pytest
import torch
from PIL import Image, ImageOps

from tests.conftest import QUICK, cli, only_run_dir, start, wait_for_epoch


def test_eval_reproduces_the_logged_test_accuracy(quick_run):
    run_dir, _ = quick_run
    logged = json.loads((run_dir / "results.json").read_text())
    proc = cli("eval", f"run={run_dir}", "json=true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["checkpoint"].endswith("best.ckpt")
    assert result["test/acc"] == pytest.approx(logged["test_acc"], abs=1e-6)
    assert result["test/loss"] == pytest.approx(logged["test_loss"], abs=1e-5)


def test_eval_full_tests_the_whole_split(quick_run, shared_data):
    """The quick run tested 2 batches; full=true every test image, as the network itself scores them."""
    import torch

    from cnnexp.data.mnist import load_split, to_float
    from cnnexp.eval import EvalArgs, evaluate
    from cnnexp.run_folder import load_task

    result = evaluate(EvalArgs(run=str(quick_run[0]), full=True))
    task, _ = load_task(str(quick_run[0]), None)
    images, labels = load_split(shared_data, train=False)
    with torch.no_grad():
        right = sum(int((task(to_float(x, True)).argmax(1) == y).sum()) for x, y in zip(images.split(1000), labels.split(1000)))
    assert result["full"] and result["test/acc"] == pytest.approx(right / len(labels), abs=1e-6)


def test_predict_reads_saved_digits_of_any_size_and_polarity(quick_run, shared_data, tmp_path):
    from cnnexp.data.mnist import load_split, to_float
    from cnnexp.run_folder import load_task

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
    (lambda d: (d / "empty").mkdir() or d / "empty", "not a run folder"),
])
def test_bad_run_folders(tmp_path, make_bad, words):
    bad = make_bad(tmp_path)
    Image.new("L", (28, 28)).save(tmp_path / "x.png")
    for module, extra in (("eval", []), ("predict", [f"images={tmp_path / 'x.png'}"])):
        proc = cli(module, f"run={bad}", *extra)
        assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("train", f"resume={bad}")
    assert proc.returncode == 2 and words in proc.stderr and f"resume={bad}" in proc.stderr


@pytest.mark.slow  # default run: truncated and foreign checkpoints on resume (tests/test_bad_input.py)
def test_truncated_and_foreign_checkpoints(quick_run, tmp_path):
    run_dir, _ = quick_run
    truncated = tmp_path / "truncated.ckpt"
    data = (run_dir / "checkpoints" / "best.ckpt").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    for path, words in ((truncated, "not a readable cnnexp checkpoint"), (foreign, "not a cnnexp checkpoint"),
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
