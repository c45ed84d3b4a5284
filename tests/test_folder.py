"""data=folder: a class-per-folder set of colour images made from real MNIST digits, trained on
through the real CLI; eval and predict from the run folder; every bad-data case."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cnnexp.config.compose import compose_config
from cnnexp.core.errors import UserError
from cnnexp.config.settings import load
from tests.helpers import SHARED_DATA, cli, only_run_dir
from tests.folder_data import COLOURS, tinted_digits

pytestmark = pytest.mark.xdist_group("test_folder")  # its module fixtures are built once, on one worker

RUN = ["data=folder", "data.batch_size=32", "trainer.max_epochs=3", "callbacks.progress_bar_refresh=0"]


@pytest.fixture(scope="module")
def tinted(tmp_path_factory, shared_data) -> Path:
    return tinted_digits(tmp_path_factory.mktemp("images") / "tinted", shared_data)


@pytest.fixture(scope="module")
def folder_run(tinted, tmp_path_factory, calibrated):
    out = tmp_path_factory.mktemp("folder_run")
    proc = cli("train", *RUN, f"data.root={tinted}", f"paths.output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return only_run_dir(out), proc


def test_shapes_come_from_the_data_without_a_model_setting(tinted, calibrated):
    proc = cli("shapes", "data=folder", f"data.root={tinted}", "json=true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = json.loads(proc.stdout)
    assert table["input_shape"] == [3, 32, 32], "colour, and the most common size (a few images are 40×40)"
    assert table["layers"][-1]["out_shape"] == [10], "one output per class folder"
    assert "skipped 2 files that are not readable images: 0_red/notes.txt, 1_green/broken.png" in proc.stderr


def test_training_on_the_folder_beats_chance_and_records_the_data(folder_run):
    run, proc = folder_run
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "ok" and results["test_acc"] > 0.5, results  # chance is 0.1
    assert "held in memory" in proc.stdout + proc.stderr
    assert "Warning" not in proc.stderr and "not writable" not in proc.stderr, "no NumPy or torch warning of our data"
    config = (run / "config.yaml").read_text()
    data = load_recorded(run)
    assert data["classes"] == sorted(f"{i}_{name}" for i, name in enumerate(COLOURS))
    assert data["channels"] == 3 and data["image_size"] == [32, 32] and len(data["mean"]) == 3 and len(data["std"]) == 3
    assert "input_shape:\n  - 3\n  - 32\n  - 32" in config and "num_classes: 10" in config
    assert (run / "shapes.txt").read_text().splitlines()[1].split()[5] == "3×32×32"
    ckpt = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["run_config"]["data"]["mean"] == data["mean"], "the checkpoint normalises the same"


def test_a_short_run_has_a_per_step_training_curve(folder_run):
    """10 batches an epoch, 3 epochs: Lightning's every-50-steps logging drew no curve at all."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, _ = folder_run
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    steps = [e.step for e in events.Scalars("train/loss_step")]
    assert len(steps) >= 20 and steps == sorted(steps), steps
    assert "log_every_n_steps: 1\n" in (run / "config.yaml").read_text(), "auto, as decided, recorded"


def load_recorded(run: Path) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(run / "config.yaml"))["data"]


@pytest.mark.slow  # 14 s; test-all runs it
def test_eval_and_predict_work_from_the_run_folder_and_name_classes(folder_run, tinted, calibrated):
    run, _ = folder_run
    results = json.loads((run / "results.json").read_text())
    again = cli("eval", f"run={run}", "json=true")
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)["test/acc"] == pytest.approx(results["test_acc"], abs=1e-6)
    proc = cli("predict", f"run={run}", f"images={tinted}/*/0.jpg", "json=true")  # one image of each class
    assert proc.returncode == 0, proc.stderr[-2000:]
    answers = json.loads(proc.stdout)
    assert len(answers) == 10 and all(a["class"] in load_recorded(run)["classes"] for a in answers)
    right = sum(a["class"] == Path(a["file"]).parent.name for a in answers)
    assert right >= 7, answers


def test_filters_and_mistakes_are_drawn_in_colour(folder_run):
    run, _ = folder_run
    events = EventAccumulator(str(run), size_guidance={"images": 0})
    events.Reload()
    filters = Image.open(io.BytesIO(events.Images("filters/block1")[-1].encoded_image_string))
    pixels = np.asarray(filters.convert("RGB")).astype(int)
    assert (np.abs(pixels[..., 0] - pixels[..., 1]) > 10).any(), "RGB filters, not a grey first channel"
    assert {"test/confusion_matrix", "features/block1"} <= set(events.Tags()["images"])


@pytest.mark.slow
def test_a_folder_beyond_the_memory_budget_is_streamed(tinted, tmp_path, calibrated):
    proc = cli("train", *RUN, "trainer.max_epochs=1", "data.memory_budget_mb=0", "data.num_workers=1",
               f"data.root={tinted}", f"paths.output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "streamed from disk by 1 loader workers" in proc.stdout + proc.stderr
    assert "Warning" not in proc.stderr, "no NumPy or torch warning from the loader workers"
    assert json.loads((only_run_dir(tmp_path) / "results.json").read_text())["status"] == "ok"


def test_every_image_mode_becomes_8_bit_at_the_chosen_size(tmp_path):
    from cnnexp.data.image_folder import read_image

    gradient = np.tile(np.linspace(0, 1, 24), (24, 1))
    rgb = Image.fromarray((np.stack([gradient, gradient[::-1], gradient * 0.5], -1) * 255).astype(np.uint8), "RGB")
    files = {"rgb.jpg": rgb, "rgba.png": rgb.convert("RGBA"), "palette.png": rgb.convert("P", palette=Image.ADAPTIVE),
             "grey16.png": Image.fromarray((gradient * 65535).astype(np.uint16)), "image.bmp": rgb, "image.webp": rgb}
    for name, image in files.items():
        image.save(tmp_path / name)
        for channels in (1, 3):
            x = read_image(tmp_path / name, channels, (16, 16))
            assert x.dtype == torch.uint8 and tuple(x.shape) == (channels, 16, 16), name
            mean = float(x.float().mean())  # a gradient: mid-grey on average; a clipped 16-bit one would be white
            assert int(x.max()) >= 200 and 80 < mean < 170, f"{name}: {channels} channels, mean {mean:.0f}"


def test_deep_grey_is_read_by_its_range_one_reading_for_one_picture(tmp_path):
    """The same gradient (0 … 255) as 8-bit PNG, 16-bit PNG (I;16), 32-bit float TIFF (F, 0 … 1),
    and in PIL's 32-bit integer container (I) at full 31-bit, 16-bit and 8-bit depth: one reading."""
    from cnnexp.data.images import read_rgb

    grey = np.tile(np.arange(256, dtype=np.uint8), (4, 1))
    files = {"grey8.png": Image.fromarray(grey), "grey16.png": Image.fromarray(grey.astype(np.uint16) * 257),
             "int32.tif": Image.fromarray(grey.astype(np.int32) << 23, "I"),
             "float.tif": Image.fromarray(grey.astype(np.float32) / 255, "F"),
             "int32_16.tif": Image.fromarray(grey.astype(np.int32) * 257, "I"),  # 16-bit values in 32 bits
             "int32_8.tif": Image.fromarray(grey.astype(np.int32), "I")}  # numpy's int32 of 8-bit values
    read = {}
    for name, image in files.items():
        image.save(tmp_path / name)
        with Image.open(tmp_path / name) as opened:
            assert opened.mode == image.mode, f"{name}: written as {image.mode}, read back as {opened.mode}"
        read[name] = read_rgb(tmp_path / name)
        assert read[name].dtype == np.uint8 and read[name].shape == (3, 4, 256), name
    for name in ("grey16.png", "int32.tif", "float.tif", "int32_16.tif", "int32_8.tif"):
        assert np.array_equal(read[name], read["grey8.png"]), f"{name}: {read[name][0, 0, ::32]}"


# ------------------------------------------------------------------ bad data: one clear message each
def classes(root: Path, counts: dict) -> Path:
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(root / name / f"{i}.png")
    return root


def two_classes(root: Path) -> None:
    classes(root, {"a": 5, "b": 5})


def stray_text(root: Path) -> None:
    two_classes(root)
    (root / "a" / "x.txt").write_text("not an image")


BAD_DATA = [  # (id, make the folder, overrides, words the one message holds)
    ("missing", lambda root: None, [], "no such folder"),
    ("empty", lambda root: root.mkdir(parents=True), [], "no class folders"),
    ("one-class", lambda root: classes(root, {"only": 5}), [], "only one class (only)"),
    ("empty-class", lambda root: classes(root, {"a": 5, "b": 0}), [], "holds no images"),
    ("val-without-train", lambda root: classes(root / "val", {"a": 2, "b": 2}), [], "no train/"),
    ("strict", stray_text, ["data.strict=true"], "x.txt is not a readable image"),
    ("image-size-0", two_classes, ["data.image_size=0"], "data.image_size=0"),
    ("channels", two_classes, ["data.channels=2"], "data.channels=2"),
    ("input-shape", two_classes, ["model.input_shape=[1,28,28]"], "holds 1×8×8 images"),
    ("num-classes", two_classes, ["model.num_classes=10"], "has 2 classes (a, b)"),
]


@pytest.mark.parametrize("make, extra, words", [c[1:] for c in BAD_DATA], ids=[c[0] for c in BAD_DATA])
def test_bad_data_is_one_clear_error(tmp_path, make, extra, words):
    root = tmp_path / "images"
    make(root)
    with pytest.raises(UserError) as e:  # 8×8 images: a network of 1×1 convolutions fits them
        load(compose_config(["data=folder", f"data.root={root}", "data.batch_size=4", "model.kernel_size=1",
                             "model.pool=none", *extra]))
    assert words in str(e.value), str(e.value)


def test_bad_folder_through_the_cli_is_one_line_and_no_folder(tmp_path, calibrated):
    classes(tmp_path / "images", {"only": 3})
    proc = cli("train", "data=folder", f"data.root={tmp_path / 'images'}", f"paths.output_dir={tmp_path / 'out'}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [l for l in proc.stderr.splitlines() if l.startswith("cnnexp: error:")] == [
        f"cnnexp: error: data.root={tmp_path / 'images'}: only one class (only); a classifier needs at least two class folders"]
    assert not (tmp_path / "out").exists()


def test_mnist_stays_the_default():
    settings = load(compose_config([f"data.root={SHARED_DATA}"]))
    assert settings.data.name == "mnist" and settings.model.input_shape == [1, 28, 28] and settings.model.num_classes == 10


def test_the_confusion_matrix_draws_a_bounded_number_of_classes():
    """300 classes: the view draws the 40 with the most mistakes, by name, and says so; its cost no
    longer grows with the classes (measured in docs/performance.md)."""
    from cnnexp.callbacks.views import MATRIX_CLASSES, confusion_figure, most_confused

    n = 300
    matrix = torch.diag(torch.full((n,), 5))
    for c in range(0, n, 7):  # every 7th class is mistaken for the next, more often the higher it is
        matrix[c, (c + 1) % n] = c + 1
    worst = most_confused(matrix, MATRIX_CLASSES)
    assert len(worst) == MATRIX_CLASSES and worst == sorted(worst) and 294 in worst and 0 not in worst
    names = [f"class{c:03d}" for c in range(n)]
    ax = confusion_figure(matrix, names).axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == MATRIX_CLASSES and labels[0] == names[worst[0]]
    assert f"{MATRIX_CLASSES} of {n} classes" in ax.get_title()
    ten = confusion_figure(matrix[:10, :10], names[:10]).axes[0]
    assert [t.get_text() for t in ten.get_yticklabels()] == names[:10] and ten.get_title() == ""


def test_the_confusion_matrix_labels_digits_upright_and_legible():
    """MNIST's ten digits: upright on both axes, large enough for TensorBoard's card (the figure
    is shown at about 500 of its 700 px); long class names keep a tilt along x, not along y."""
    from cnnexp.callbacks.views import confusion_figure

    matrix = torch.diag(torch.full((10,), 90)) + 1
    ax = confusion_figure(matrix, [str(d) for d in range(10)]).axes[0]
    for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
        assert [t.get_text() for t in labels] == [str(d) for d in range(10)]
        assert all(t.get_rotation() == 0 and t.get_fontsize() >= 14 for t in labels)
    ax = confusion_figure(matrix, ["airplane", "automobile", *map(str, range(8))]).axes[0]
    assert all(t.get_rotation() == 45 for t in ax.get_xticklabels())
    assert all(t.get_rotation() == 0 for t in ax.get_yticklabels())
