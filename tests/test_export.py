"""Shipping a run: `cnnexp.export` to ONNX (and TorchScript) checked against PyTorch on the run's
own test images, and `predict backend=onnx` with onnxruntime alone — on tiny real runs.

The default run exports cnn3 (the session's quick run, copied) and trains speed, with batch norm,
on a colour image folder; every other network the platform builds is in the slow matrix."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from cnnexp import export as export_module
from cnnexp.export import ExportArgs
from cnnexp.predict import PredictArgs, predict
from tests.helpers import PATIENCE_S, PROJECT, SHARED_DATA, cli, only_run_dir
from tests.folder_data import tinted_digits

pytestmark = pytest.mark.xdist_group("test_export")  # its module fixtures are built once, on one worker

TINY = [f"data.root={SHARED_DATA}", "trainer.max_epochs=1", "trainer.limit_train_batches=4",
        "trainer.limit_val_batches=1", "test_after_fit=false", "callbacks.progress_bar_refresh=0"]


def train(tmp_path_factory, name: str, *overrides: str) -> Path:
    out = tmp_path_factory.mktemp(name)
    proc = cli("train", *TINY, *overrides, f"paths.output_dir={out}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return only_run_dir(out)


def export(run: Path, capsys, *args: str) -> str:
    """The real entry point, in this process (torch is imported once for the file): its stdout."""
    export_module.main([f"run={run}", *args])
    return capsys.readouterr().out


def export_fails(run: Path, capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        export_module.main([f"run={run}", *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and err.startswith("cnnexp: error: "), err
    return err


def metadata(path: Path) -> dict:
    return {p.key: json.loads(p.value) for p in onnx.load(path).metadata_props}


def predict_onnx(*args: str) -> list:
    """`python -m cnnexp.predict backend=onnx …` in its own process, which must never import torch."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "cnnexp.predict", "json=true", *args],
                          cwd=PROJECT, capture_output=True, text=True, timeout=PATIENCE_S)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "onnxruntime" in imported and not any(re.match(r"(torch|lightning)\b", m) for m in imported), \
        sorted(m for m in imported if m.startswith(("torch", "lightning")))
    return json.loads(proc.stdout)


def same_answers(onnx_answers: list, torch_answers: list, label: str) -> None:
    assert [(a["file"], a[label]) for a in onnx_answers] == [(a["file"], a[label]) for a in torch_answers]
    for a, b in zip(onnx_answers, torch_answers):  # the runners-up may swap only where tied within rounding
        assert np.allclose([t["probability"] for t in a["top"]], [t["probability"] for t in b["top"]], atol=1.01e-4)
        pb = {t[label]: t["probability"] for t in b["top"]}
        assert all(abs(t["probability"] - pb.get(t[label], 0.0)) <= 1.01e-4 for t in a["top"])


@pytest.fixture(scope="module")
def cnn3_run(tmp_path_factory, quick_run) -> Path:
    """A copy of the session's cnn3 run (trained once for many test files): exports write into it."""
    copy = tmp_path_factory.mktemp("cnn3") / "run"
    shutil.copytree(quick_run[0], copy)
    return copy


@pytest.fixture(scope="module")
def tinted(tmp_path_factory, shared_data) -> Path:
    return tinted_digits(tmp_path_factory.mktemp("images") / "tinted", shared_data, per_class=20)


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory, tinted, calibrated) -> Path:
    return train(tmp_path_factory, "colour", "data=folder", f"data.root={tinted}", "data.batch_size=32", "model=speed")


def test_cnn3_exports_with_its_facts_and_matches_pytorch(cnn3_run, capsys):
    out = export(cnn3_run, capsys)
    assert re.search(r"parity on 1,000 test images: max \|logit diff\| \S+, 0 of 1,000 predictions differ", out), out
    model = onnx.load(cnn3_run / "model.onnx")
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.dim_value, "the batch axis is dynamic"
    facts = metadata(cnn3_run / "model.onnx")
    results = json.loads((cnn3_run / "results.json").read_text())
    assert facts["cnnexp.classes"] == [str(d) for d in range(10)] and facts["cnnexp.input_shape"] == [1, 28, 28]
    assert facts["cnnexp.mean"] == [0.1307] and facts["cnnexp.std"] == [0.3081] and facts["cnnexp.normalize"]
    assert facts["cnnexp.monitor"] == "val/acc" and facts["cnnexp.best_value"] == pytest.approx(results["best_val_acc"], abs=1e-6)
    assert facts["cnnexp.exporter"].startswith("torch.onnx dynamo") and facts["cnnexp.version"]
    assert facts["cnnexp.parity"]["images"] == 1000 and facts["cnnexp.parity"]["max_abs_diff"] <= 1e-4

    # checked here too, independently: onnxruntime on MNIST test images against the checkpoint's network
    import onnxruntime
    import torch

    from cnnexp.data.mnist import load_split, to_float
    from cnnexp.run.restore import load_task

    task, _ = load_task(str(cnn3_run), None)
    x = to_float(load_split(SHARED_DATA, train=False)[0][-300:], True)  # not the images export checked
    with torch.no_grad():
        expected = task(x).numpy()
    got = onnxruntime.InferenceSession(str(cnn3_run / "model.onnx")).run(None, {"input": x.numpy()})[0]
    assert np.abs(got - expected).max() <= 1e-4 and (got.argmax(1) == expected.argmax(1)).all()


def test_a_failed_parity_check_leaves_no_file_and_the_earlier_one_intact(cnn3_run, capsys):
    if not (cnn3_run / "model.onnx").exists():
        export(cnn3_run, capsys, "images=100")
    before = (cnn3_run / "model.onnx").read_bytes()
    err = export_fails(cnn3_run, capsys, "images=100", "tolerance=1e-12")  # float32 noise exceeds this
    assert "model.onnx not written — the export disagrees with PyTorch: parity on 100 test images" in err, err
    assert (cnn3_run / "model.onnx").read_bytes() == before
    assert not [p for p in cnn3_run.iterdir() if p.name.startswith(".model.onnx")], "no temporary file left"


def test_predict_with_onnx_answers_as_torch_does_without_importing_torch(cnn3_run, capsys, tmp_path, shared_data):
    if not (cnn3_run / "model.onnx").exists():
        export(cnn3_run, capsys, "images=100")
    from cnnexp.data.mnist import load_split

    digits = load_split(shared_data, train=False)[0][:4, 0].numpy()
    for i, d in enumerate(digits):  # dark ink on light paper, larger than MNIST: predict recentres them
        Image.fromarray(255 - d).resize((60, 60)).save(tmp_path / f"{i}.png")
    Image.new("L", (30, 30), 255).save(tmp_path / "blank.png")
    torch_answers = predict(PredictArgs(run=str(cnn3_run), images=str(tmp_path)))
    onnx_answers = predict_onnx(f"run={cnn3_run}", "backend=onnx", f"images={tmp_path}")
    assert onnx_answers[-1]["note"] == "no digit found (blank image)" == torch_answers[-1]["note"]
    same_answers(onnx_answers, torch_answers, "digit")
    alone = predict_onnx(f"model={cnn3_run / 'model.onnx'}", f"images={tmp_path}/0.png")  # the file alone
    assert alone == onnx_answers[:1]
    # trained further since (a resume found a better epoch: a new best.ckpt): the old file is not used for it
    further = tmp_path / "trained further"
    shutil.copytree(cnn3_run, further)
    record = json.loads((further / "results.json").read_text())
    (further / "results.json").write_text(json.dumps({**record, "best_val_acc": record["best_val_acc"] / 2 + 0.5}))
    proc = subprocess.run([sys.executable, "-m", "cnnexp.predict", f"run={further}", "backend=onnx",
                           f"images={tmp_path}/0.png"], cwd=PROJECT, capture_output=True, text=True, timeout=PATIENCE_S)
    assert proc.returncode == 2 and "model.onnx was exported from an earlier best.ckpt" in proc.stderr, proc.stderr


def test_colour_folder_run_with_batch_norm_exports_and_predicts_its_classes(colour_run, tinted, capsys):
    out = export(colour_run, capsys)
    test_split = re.search(r"parity on (\d+) test images", out)
    assert test_split and 0 < int(test_split[1]) < 1000, "the folder's own test split, all of it"
    assert re.search(r"0 of \d+ predictions differ", out), out
    facts = metadata(colour_run / "model.onnx")
    assert facts["cnnexp.data"] == "folder" and facts["cnnexp.input_shape"] == [3, 32, 32]
    assert facts["cnnexp.classes"] == sorted(p.name for p in tinted.iterdir())
    assert len(facts["cnnexp.mean"]) == 3 and len(facts["cnnexp.std"]) == 3
    images = f"{tinted}/*/[0-9].*"  # JPEG, RGBA, palette, 16-bit grey, RGB; 9.png is 40×40: resized
    torch_answers = predict(PredictArgs(run=str(colour_run), images=images))
    onnx_answers = predict_onnx(f"run={colour_run}", "backend=onnx", f"images={images}")
    assert len(onnx_answers) == 100
    same_answers(onnx_answers, torch_answers, "class")


def test_bad_requests_are_one_line(cnn3_run, capsys, tmp_path, calibrated):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.yaml").write_text((cnn3_run / "config.yaml").read_text())
    assert "no checkpoints/best.ckpt" in export_fails(bare, capsys)
    assert "format='tflite' is not valid: onnx or torchscript" in export_fails(cnn3_run, capsys, "format=tflite")
    assert "images=0 is not valid" in export_fails(cnn3_run, capsys, "images=0")
    other = tmp_path / "other run"
    shutil.copytree(bare, other)
    before = {p.name: p.read_bytes() for p in cnn3_run.rglob("*") if p.is_file()}
    for out, words in [(cnn3_run / "results.json", "name ends in .onnx"), (cnn3_run / "checkpoints" / "best.ckpt",
                       "name ends in .onnx"), (other / "model.onnx", "only that run's own model.onnx"),
                       (cnn3_run / "copy.onnx", "only that run's own model.onnx")]:  # a record is never an export target
        assert words in export_fails(cnn3_run, capsys, f"out={out}")
    assert {p.name: p.read_bytes() for p in cnn3_run.rglob("*") if p.is_file()} == before
    assert not (other / "model.onnx").exists()
    Image.new("L", (28, 28)).save(tmp_path / "digit.png")
    proc = cli("predict", f"run={bare}", "backend=onnx", f"images={tmp_path}")
    assert proc.returncode == 2 and "no model.onnx in this run; export it first" in proc.stderr, proc.stderr


# ------------------------------------------------------------------ every network the platform builds
MATRIX = {
    "speed": ["model=speed"],
    "convae": ["model=convae"],
    "dilated": ["model.blocks.1.dilation=2"],
    "grouped": ["model.blocks.1.groups=32", "model.blocks.2.groups=64"],
    "avg_pool": ["model.pool=avg"],
    "l2_pool": ["model.pool=l2"],
    "group_norm_gelu": ["model.norm=group", "model.norm_groups=4", "model.activation=gelu"],
    "colour_cnn3": ["data=folder", "data.batch_size=32"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", MATRIX)
def test_every_network_exports_and_matches_pytorch(name, tmp_path_factory, tinted, capsys, calibrated):
    overrides = MATRIX[name] + ([f"data.root={tinted}"] if "data=folder" in MATRIX[name] else [])
    run = train(tmp_path_factory, name, *overrides)
    out = export(run, capsys, "images=500")
    what = "reconstruction" if name == "convae" else "logit"
    assert re.search(rf"max \|{what} diff\| ", out) and (name == "convae" or " 0 of " in out), out
    facts = metadata(run / "model.onnx")
    assert facts["cnnexp.parity"]["max_abs_diff"] <= 1e-4
    print(f"{name}: {facts['cnnexp.exporter']}, max diff {facts['cnnexp.parity']['max_abs_diff']:.2e}", file=sys.stderr)
    if name == "convae":  # an autoencoder exports, but does not classify
        proc = cli("predict", f"run={run}", "backend=onnx", f"images={tinted}/0_red/0.jpg")
        assert proc.returncode == 2 and "does not classify images" in proc.stderr


@pytest.mark.slow
def test_torchscript_export_matches_pytorch_and_loads_alone(cnn3_run, capsys):
    out = export(cnn3_run, capsys, "format=torchscript", "images=200")
    assert "0 of 200 predictions differ" in out and (cnn3_run / "model.torchscript.pt").is_file()
    import torch

    extra = {"cnnexp.json": ""}
    torch.jit.load(str(cnn3_run / "model.torchscript.pt"), _extra_files=extra)
    assert json.loads(extra["cnnexp.json"])["classes"] == [str(d) for d in range(10)]


@pytest.mark.slow
def test_a_layer_no_exporter_takes_is_one_line():
    import torch
    from torch import nn

    from cnnexp.core.errors import RunError

    class NanMedian(nn.Module):  # no ONNX operator, and no decomposition into one
        def forward(self, x):
            return torch.nanmedian(x.flatten(1), dim=1).values[:, None]

    with pytest.raises(RunError) as error:
        export_module.to_onnx(NanMedian().eval(), torch.zeros(2, 1, 28, 28))
    message = str(error.value)
    assert message.startswith("the network cannot be exported to ONNX: dynamo: ") and "nanmedian" in message
    assert "torchscript: " in message and "\n" not in message
