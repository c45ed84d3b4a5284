"""Data in one and three dimensions, torch-free: the .ts parser (each malformed kind one line
naming the file and case), .npz sets, volumes' shapes, and each data name's facts — then the
same refusals through `python -m cnnexp.train`: one line, exit 2, no run folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnexp.core.errors import DataUnavailable
from cnnexp.data import series, ts, volumes
from tests.helpers import cli
from tests.ucr_data import ucr

HEAD = "@problemName Toy\n@timeStamps false\n@missing {missing}\n@univariate {uni}\n{dims}@equalLength {equal}\n" \
       "{length}@classLabel true up down\n@data\n"


def toy(folder: Path, cases: str, missing="false", uni="true", dims="", equal="true", length="@seriesLength 4\n",
        test: str = "1,2,3,4:up\n4,3,2,1:down\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    head = HEAD.format(missing=missing, uni=uni, dims=dims, equal=equal, length=length)
    (folder / "Toy_TRAIN.ts").write_text(head + cases)
    (folder / "Toy_TEST.ts").write_text(head + test)
    return folder


GOOD = "".join(f"{i},{i + 1},{i + 2},{i + 3}:up\n{i + 3},{i + 2},{i + 1},{i}:down\n" for i in range(5))


def test_a_well_formed_file_reads_into_n_c_l_with_its_class_names(tmp_path):
    cases = ts.parse(toy(tmp_path, GOOD) / "Toy_TRAIN.ts")
    x = ts.to_array(cases, cases.longest)
    assert x.shape == (10, 1, 4) and cases.classes == ["up", "down"]
    assert x[1, 0].tolist() == [3, 2, 1, 0] and cases.labels[:2] == ["up", "down"]


def test_gaps_are_interpolated_only_where_the_header_allows_them(tmp_path):
    folder = toy(tmp_path, GOOD + "1,?,?,4:up\n?,2,3,?:down\n", missing="true")
    cases = ts.parse(folder / "Toy_TRAIN.ts")
    x = ts.to_array(cases, 4)
    assert x[10, 0].tolist() == [1, 2, 3, 4] and x[11, 0].tolist() == [2, 2, 3, 3]  # linear inside, nearest at the ends


MALFORMED = [  # (cases after @data, header changes, what the one line says)
    ("1,2,3,4:up\n1,2,?,4:down\n", {}, "case 2 (line 10), dimension 1: a missing value"),
    ("1,2,3,4:up\n1,2,x,4:down\n", {}, "'x' is not a number"),
    ("1,2,3,4:up\n1,2,3,4\n", {}, "case 2 (line 10): no class label"),
    ("1,2,3,4:up\n1,2,3,4:left\n", {}, "label 'left' is not among"),
    ("1,2,3,4:up\n1,2,3:down\n", {}, "case 2 (line 10) is 3 long, but @seriesLength is 4"),
    ("1,2,3,4:5,6,7,8:up\n1,2,3,4:5,6,7:down\n", {"uni": "false", "dims": "@dimensions 2\n"}, "ragged dimensions"),
    ("1,2,3,4:5,6,7,8:up\n1,2,3,4:down\n", {"uni": "false", "dims": "@dimensions 2\n"},
     "case 2 (line 11) has 1 dimensions, the header says 2"),
    ("1,2,3,4:up\n1,2,nan,4:down\n", {}, "a missing value ('nan')"),
    ("1,2,3,4:up\n1,inf,3,4:down\n", {}, "an infinite value"),
]


@pytest.mark.parametrize("cases,header,says", MALFORMED, ids=[m[2][:24] for m in MALFORMED])
def test_each_malformed_case_is_one_line_naming_file_and_case(tmp_path, cases, header, says):
    path = toy(tmp_path, cases, **header) / "Toy_TRAIN.ts"
    with pytest.raises(DataUnavailable) as e:
        ts.parse(path)
    assert says in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_a_header_without_data_or_labels_is_refused(tmp_path):
    (tmp_path / "a.ts").write_text("@problemName A\n@classLabel false\n@data\n1,2:1\n")
    with pytest.raises(DataUnavailable, match="names no classes"):
        ts.parse(tmp_path / "a.ts")
    (tmp_path / "b.ts").write_text("@problemName B\n@classLabel true 1 2\n")
    with pytest.raises(DataUnavailable, match="no @data line"):
        ts.parse(tmp_path / "b.ts")


def test_npz_sets_read_with_sorted_labels_and_refuse_nan(tmp_path):
    x = np.random.default_rng(0).normal(size=(12, 2, 30)).astype(np.float32)
    y = np.array(["b", "a", "c"] * 4)
    np.savez(tmp_path / "S_TRAIN.npz", x=x, y=y)
    np.savez(tmp_path / "S_TEST.npz", x=x[:3], y=y[:3])
    got, labels, classes = series.read(tmp_path / "S_TRAIN.npz")
    assert got.shape == (12, 2, 30) and classes == ["a", "b", "c"] and labels[:3].tolist() == [1, 0, 2]
    x[4, 1, 7] = np.nan
    np.savez(tmp_path / "S_TRAIN.npz", x=x, y=y)
    with pytest.raises(DataUnavailable, match=r"S_TRAIN.npz: case 5 holds NaN \(channel 2, step 8\)"):
        series.read(tmp_path / "S_TRAIN.npz")


def test_padding_and_scaling_rules(tmp_path):
    x = np.array([[[1, 2, 3, np.nan]], [[2, 4, np.nan, np.nan]]], np.float32)
    mean, std = series.channel_stats(x)
    assert mean == [2.4] and series.prepare(x, "channel", mean, std)[1, 0, 2:].tolist() == [0, 0]
    z = series.prepare(x, "series")
    assert abs(z[0, 0, :3].mean()) < 1e-6 and z[0, 0, 3] == 0 and abs(z[1, 0, :2].std() - 1) < 1e-6


def test_a_volume_of_another_shape_than_its_neighbours_is_named(tmp_path):
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(5):
            np.save(tmp_path / c / f"{i}.npy", np.zeros((8, 8, 8), np.float32))
    np.save(tmp_path / "b" / "odd.npy", np.zeros((8, 8, 9), np.float32))
    with pytest.raises(DataUnavailable, match=r"odd.npy: a volume of 1×8×8×9, but its neighbours are 1×8×8×8"):
        volumes.scan(str(tmp_path), 0.2, 0.2, 0)
    (tmp_path / "b" / "odd.npy").unlink()
    classes, files, shape = volumes.scan(str(tmp_path), 0.2, 0.2, 0)
    assert classes == ["a", "b"] and shape == (1, 8, 8, 8) and sum(map(len, files.values())) == 10


def test_moving_mnist_clips_are_deterministic_and_keep_the_digit_in_frame():
    from cnnexp.data.moving_mnist import clips

    digits = np.full((3, 28, 28), 255, np.uint8)
    a, pick = clips(digits, 4, 20, 64, seed=7)
    b, _ = clips(digits, 4, 20, 64, seed=7)
    assert (a == b).all() and a.shape == (4, 1, 20, 64, 64)
    assert ((a > 0).sum(axis=(3, 4)) == 28 * 28).all()  # the whole digit in every frame: it bounced
    assert (a[:, :, 0] != a[:, :, 5]).any()


def test_seqmnist_permutation_is_fixed_by_its_seed():
    from cnnexp.data.seqmnist import permutation

    assert (permutation(0) == permutation(0)).all() and sorted(permutation(0)) == list(range(784))
    assert (permutation(0) != permutation(1)).any()


@pytest.mark.parametrize("name,shape,classes", [("GunPoint", (1, 150), 2), ("JapaneseVowels", (12, 29), 9),
                                                ("BasicMotions", (6, 100), 4)])
def test_real_ucr_sets_give_their_shape_and_classes(name, shape, classes):
    from cnnexp.config.compose import compose_config
    from cnnexp.config.schema import SeriesSettings
    from cnnexp.data.facts import facts_of
    from omegaconf import OmegaConf

    cfg = compose_config(["data=series", f"data.root={ucr(name)}"])
    d = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SeriesSettings), cfg.data))
    facts = facts_of("series")(d, 0, True)
    assert facts.shape == shape and len(facts.classes) == classes and d.length == shape[1] and d.problem == name


def test_train_refuses_a_malformed_ts_in_one_line_without_a_run_folder(tmp_path):
    folder = toy(tmp_path / "set", GOOD + "1,2,3:up\n")
    out = tmp_path / "outputs"
    proc = cli("train", "data=series", f"data.root={folder}", f"paths.output_dir={out}",
               env={"XDG_CACHE_HOME": str(tmp_path / "cache")})  # refused before any calibration is read
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnexp: error: ") and "Toy_TRAIN.ts: case 11 (line 19)" in lines[0]
    assert not out.exists() or not any(out.rglob("results.json"))


def test_every_data_name_has_its_schema_conf_facts_and_sizes():
    from cnnexp import CONF_DIR
    from cnnexp.config.schema import DATASETS
    from cnnexp.data.facts import FACTS, facts_of, sizes_of

    assert set(DATASETS) == set(FACTS) == {p.stem for p in (CONF_DIR / "data").glob("*.yaml")}
    assert all(callable(facts_of(n)) and callable(sizes_of(n)) for n in FACTS)


def test_predict_inputs_follow_the_runs_length_and_scaling(tmp_path):
    from types import SimpleNamespace

    from cnnexp.core.errors import RunError
    from cnnexp.data import inputs

    data = SimpleNamespace(name="series", channels=1, length=6, scaling="channel", mean=[1.0], std=[2.0])
    np.save(tmp_path / "one.npy", np.array([1, 3, 5, 7], np.float32))
    names, x, labels = inputs.read(str(tmp_path / "one.npy"), data)
    assert names == ["one.npy#1"] and x.tolist() == [[[0, 1, 2, 3, 0, 0]]] and labels == [None]
    np.save(tmp_path / "long.npy", np.zeros((2, 9), np.float32))
    with pytest.raises(RunError, match=r"long.npy: series 9 steps long; the run was trained on 6"):
        inputs.read(str(tmp_path / "long.npy"), data)
    (tmp_path / "cases.ts").write_text("@problemName T\n@classLabel false\n@data\n1,3\n5,7,9\n")
    names, x, labels = inputs.read(str(tmp_path / "cases.ts"), data)
    assert x.shape == (2, 1, 6) and x[1, 0, :3].tolist() == [2, 3, 4] and labels == [None, None]


def test_time_stamped_cases_are_read_for_their_values(tmp_path):
    (tmp_path / "s.ts").write_text("@problemName S\n@timeStamps true\n@univariate true\n@classLabel true a b\n@data\n"
                                   "(2007-01-01 00:00:00,1.5),(2007-01-01 00:01:00,2.5):a\n(2008-09-09 20:56:00,4.0):b\n")
    cases = ts.parse(tmp_path / "s.ts")
    assert cases.series == [[[1.5, 2.5]], [[4.0]]] and cases.labels == ["a", "b"]


def test_npy_pairs_and_several_problems_in_one_folder(tmp_path):
    x = np.arange(40, dtype=np.float32).reshape(8, 5)
    for split in ("TRAIN", "TEST"):
        np.save(tmp_path / f"P_{split}_X.npy", x)
        np.save(tmp_path / f"P_{split}_y.npy", np.array([2, 1] * 4))
    assert series.problem_files(str(tmp_path), "auto")[0].name == "P_TRAIN_X.npy"
    got, labels, classes = series.read(tmp_path / "P_TRAIN_X.npy")
    assert got.shape == (8, 1, 5) and classes == ["1", "2"] and labels[:2].tolist() == [1, 0]
    toy(tmp_path, GOOD)
    with pytest.raises(DataUnavailable, match=r"2 problems \(P, Toy\); name one: data.problem=NAME"):
        series.problem_files(str(tmp_path), "auto")


def test_predict_inputs_of_a_volumes_run(tmp_path):
    from types import SimpleNamespace

    from cnnexp.core.errors import RunError
    from cnnexp.data import inputs

    data = SimpleNamespace(name="volumes", shape=[1, 4, 4, 4], normalize=True, mean=[1.0], std=[2.0])
    np.save(tmp_path / "v.npy", np.full((4, 4, 4), 3.0, np.float32))  # one volume, D×H×W
    names, x, _ = inputs.read(str(tmp_path / "v.npy"), data)
    assert names == ["v.npy#1"] and x.shape == (1, 1, 4, 4, 4) and (x == 1.0).all()
    np.save(tmp_path / "w.npy", np.zeros((2, 1, 4, 4, 5), np.float32))
    with pytest.raises(RunError, match=r"volumes of 1×4×4×5, but the run takes 1×4×4×4"):
        inputs.read(str(tmp_path / "w.npy"), data)
