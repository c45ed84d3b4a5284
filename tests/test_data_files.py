"""Every array or series file a user hands over is read by one reader (data/npy.py) and checked by
one check: training series (.npz, _X/_y.npy), volumes and predict's inputs= refuse the same
things in one line naming the file — never a traceback, never an allocation the file cannot back,
never a byte of a file that is not numpy's. Torch-free and cheap: the default run."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from cnnexp.core.errors import UserError
from cnnexp.data import inputs, series, ts, volumes

SERIES = SimpleNamespace(name="series", channels=1, length=6, scaling="none", mean=None, std=None, padded=False)
VOLUMES = SimpleNamespace(name="volumes", shape=[1, 2, 2, 2], normalize=False, mean=None, std=None)


def _huge_header(path, shape=(10**6, 10**6)):
    head = np.lib.format.header_data_from_array_1_0(np.ones(1, np.float32))
    head["shape"] = shape
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, head)


def _bad_files(tmp_path, good):
    """name → (file, words of the one line): each way a numpy file goes wrong, for any reader."""
    np.save(tmp_path / "good.npy", good)
    (tmp_path / "cut.npy").write_bytes((tmp_path / "good.npy").read_bytes()[:-4])
    _huge_header(tmp_path / "huge.npy")
    (tmp_path / "text.npy").write_text("root:x:0:0:root:/root\n")
    (tmp_path / "zip.npz").write_bytes(b"PK\x03\x04" + b"garbage" * 9)
    np.savez_compressed(tmp_path / "garbled.npz", x=np.arange(4096, dtype=np.float32))
    raw = bytearray((tmp_path / "garbled.npz").read_bytes())  # its zip headers whole, its deflate stream not
    raw[200:400] = bytes(range(200))
    (tmp_path / "garbled.npz").write_bytes(bytes(raw))
    np.save(tmp_path / "obj.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    cases = {"cut.npy": "cut short", "huge.npy": "4,000,000,000,000 bytes", "text.npy": "not an .npy file",
             "zip.npz": "not a readable .npz", "garbled.npz": "not a readable .npz", "obj.npy": "pickled Python objects"}
    for name, value, words in [("inf", np.inf, "holds inf"), ("big", 1e39, "beyond float32"), ("nan", np.nan, "NaN")]:
        bad = good.astype(np.float64)
        bad.flat[-1] = value
        np.save(tmp_path / f"{name}.npy", bad)
        cases[f"{name}.npy"] = words
    for name, array, words in [("bool", good > 0, "true/false"), ("complex", good + 1j, "complex"),
                               ("struct", np.zeros(3, [("a", "<f4")]), "structured"),
                               ("empty", np.zeros((0, *good.shape[1:]), np.float32), "holds no values")]:
        np.save(tmp_path / f"{name}.npy", array)
        cases[f"{name}.npy"] = words
    return cases


def _one_line(call, words, name):
    with pytest.raises(UserError) as raised:
        call()
    text = str(raised.value)
    assert words in text and name in text and "\n" not in text and "root:x" not in text, text


def test_predict_inputs_refuse_what_training_refuses(tmp_path):
    for name, words in _bad_files(tmp_path, np.ones((3, 6), np.float32)).items():
        _one_line(lambda: inputs.read(str(tmp_path / name), SERIES), words, name)
        if name.endswith(".npy") and name != "empty.npy":  # the same file as a training set's x
            for split in ("TRAIN", "TEST"):
                (tmp_path / f"P_{split}_X.npy").write_bytes((tmp_path / name).read_bytes())
                np.save(tmp_path / f"P_{split}_y.npy", np.array([0, 1, 0]))
            _one_line(lambda: series.read(tmp_path / "P_TRAIN_X.npy"), words, "P_TRAIN_X.npy")


def test_volumes_are_checked_at_scan_time_from_the_header_and_the_size(tmp_path):
    for c in ("x", "y"):
        (tmp_path / c).mkdir()
        for i in range(3):
            np.save(tmp_path / c / f"{i}.npy", np.ones((2, 2, 2), np.float32))
    for name, words in [("cut.npy", "cut short"), ("huge.npy", "bytes"), ("text.npy", "not an .npy file")]:
        _bad_files(tmp_path / "x", np.ones((2, 2, 2), np.float32))
        for other in (tmp_path / "x").glob("*.npy"):
            if other.name != name and not other.name[0].isdigit():
                other.unlink()
        _one_line(lambda: volumes.scan(str(tmp_path), 0.2, 0.2, 0), words, name)
    for bad in (tmp_path / "x").glob("*.npy"):
        bad.unlink() if not bad.name[0].isdigit() else None
    np.save(tmp_path / "x" / "nan.npy", np.full((2, 2, 2), np.nan, np.float32))
    _one_line(lambda: volumes.read([(tmp_path / "x" / "nan.npy", 0)], (1, 2, 2, 2)), "NaN", "nan.npy")
    _one_line(lambda: inputs.read(str(tmp_path / "x" / "nan.npy"), VOLUMES), "NaN", "nan.npy")


def test_an_extra_class_folder_under_val_is_refused(tmp_path):
    for split, names in (("train", "ab"), ("val", "abq")):
        for c in names:
            (tmp_path / split / c).mkdir(parents=True)
            np.save(tmp_path / split / c / "0.npy", np.ones((2, 2, 2), np.float32))
    _one_line(lambda: volumes.scan(str(tmp_path), 0.2, 0.2, 0), "val/ has class folder q that train/ lacks", "q")


def test_series_npz_with_scalar_labels_and_a_pickled_y_name_their_file(tmp_path):
    np.savez(tmp_path / "S_TRAIN.npz", x=np.ones((4, 6)), y=np.array(5))
    _one_line(lambda: series.read(tmp_path / "S_TRAIN.npz"), "labels of shape a scalar", "S_TRAIN.npz")
    np.save(tmp_path / "P_TRAIN_X.npy", np.ones((2, 6)))
    np.save(tmp_path / "P_TRAIN_y.npy", np.array(["a", 1], dtype=object), allow_pickle=True)
    _one_line(lambda: series.read(tmp_path / "P_TRAIN_X.npy"), "pickled", "P_TRAIN_y.npy")


TS = "@problemName T\n@classLabel true {}\n@data\n{}"


@pytest.mark.parametrize("labels, cases, words", [
    ("a b a", "1,2:a\n3,4:b\n", "@classLabel names a more than once"),
    ("a b", "1e39,2:a\n3,4:b\n", "beyond float32"),
])
def test_ts_refusals(tmp_path, labels, cases, words):
    (tmp_path / "T_TRAIN.ts").write_text(TS.format(labels, cases))
    _one_line(lambda: ts.parse(tmp_path / "T_TRAIN.ts"), words, "T_TRAIN.ts")


def test_a_utf8_bom_is_read_and_a_one_class_train_file_refused(tmp_path):
    (tmp_path / "T_TRAIN.ts").write_bytes("\ufeff".encode() + TS.format("a b", "1,2:a\n3,4:a\n").encode())
    (tmp_path / "T_TEST.ts").write_text(TS.format("a b", "1,2:a\n3,4:b\n"))
    assert ts.parse(tmp_path / "T_TRAIN.ts").labels == ["a", "a"]
    d = SimpleNamespace(root=str(tmp_path), problem="auto", length="auto", classes=None, val_fraction=0.5,
                        scaling="none", mean=None, std=None)
    _one_line(lambda: series.facts(d, 0, True), "T_TRAIN.ts holds only a", "data.root")


def test_predict_pads_only_where_training_padded_and_shows_the_files_shape(tmp_path, capsys):
    np.save(tmp_path / "short.npy", np.ones((2, 4), np.float32))
    _one_line(lambda: inputs.read(str(tmp_path / "short.npy"), SERIES), "nothing padded", "short.npy")
    padded = SimpleNamespace(**{**vars(SERIES), "padded": True})
    assert inputs.read(str(tmp_path / "short.npy"), padded)[1].shape == (2, 1, 6)
    assert "2 of 2 series shorter than the run's 6 steps" in capsys.readouterr().err
    np.save(tmp_path / "wide.npy", np.ones((2, 3, 5), np.float32))
    _one_line(lambda: inputs.read(str(tmp_path / "wide.npy"), SERIES), "an array of 2×3×5", "wide.npy")


@pytest.mark.parametrize("net, words", [("NoParams", "no trainable parameters"), ("Exits", "called sys.exit(0)")])
def test_an_own_network_without_parameters_or_that_exits_is_one_line(net, words):
    from cnnexp.config.compose import compose_config
    from cnnexp.config.settings import load
    from tests.helpers import SHARED_DATA

    with pytest.raises(UserError) as raised:
        load(compose_config([f"data.root={SHARED_DATA}", "model=own", f"model._target_=tests.own_nets.{net}"]))
    assert words in str(raised.value) and "\n" not in str(raised.value)


def _toy_set(folder, length=8, n=20):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        up = i % 2 == 0
        values = np.sort(rng.normal(size=length)) * (1 if up else -1)
        lines.append(",".join(f"{v:.3f}" for v in values) + (":up" if up else ":down"))
    for split in ("TRAIN", "TEST"):
        (folder / f"Toy_{split}.ts").write_text("@problemName Toy\n@classLabel true up down\n@data\n"
                                                 + "\n".join(lines) + "\n")
    return folder


@pytest.mark.slow  # trains a 1-D run
def test_a_series_run_predicts_a_labelled_ts_with_accuracy_and_resume_names_changed_data(tmp_path, calibrated):
    from tests.helpers import cli, only_run_dir

    data = _toy_set(tmp_path / "toy")
    base = ["data=series", f"data.root={data}", "data.batch_size=4",
            "callbacks.progress_bar_refresh=0", f"paths.output_dir={tmp_path / 'out'}"]
    proc = cli("train", *base, "trainer.max_epochs=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = only_run_dir(tmp_path / "out")
    got = cli("predict", f"run={run}", f"inputs={data / 'Toy_TEST.ts'}")
    assert got.returncode == 0 and "accuracy on the 20 labelled cases of the file:" in got.stdout, got.stderr[-2000:]
    evaluated = cli("eval", f"run={run}")
    assert evaluated.returncode == 0 and "series" in evaluated.stdout.splitlines()[0], evaluated.stdout
    (data / "Toy_TRAIN.ts").write_text((data / "Toy_TRAIN.ts").read_text() + ",".join(["1.0"] * 12) + ":up\n")
    resumed = cli("train", f"resume={run}", "trainer.max_epochs=2")
    assert resumed.returncode == 2 and "the data changed since this run trained" in resumed.stderr, resumed.stderr


@pytest.mark.slow  # a process per case
def test_a_bad_npz_leaves_no_run_folder(tmp_path, calibrated):
    from tests.helpers import cli

    for split in ("TRAIN", "TEST"):
        np.savez(tmp_path / f"S_{split}.npz", x=np.ones((4, 6)), y=np.array(5))
    proc = cli("train", "data=series", f"data.root={tmp_path}", f"paths.output_dir={tmp_path / 'out'}")
    assert proc.returncode == 2 and "labels of shape a scalar" in proc.stderr and not (tmp_path / "out").exists()
