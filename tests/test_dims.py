"""The arithmetic and the networks in 1 and 3 dimensions (a series C×L, a volume or clip C×D×H×W),
checked as tests/test_models.py checks 2-D: the plan against the shapes PyTorch produces for random
settings, the settings check's one-line refusals, the table, the drawings, and ONNX parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings as hsettings, strategies as st
from torch import nn

from cnnexp.arithmetic import draw as arithmetic, scene
from cnnexp.arithmetic.geometry import conv_out, plan, transposed_out
from cnnexp.arithmetic.table import format_table, table_json
from cnnexp.config.validate import _check_model, _check_plan
from cnnexp.core.errors import SettingsError, ShapeError
from cnnexp.data.facts import DataFacts
from cnnexp.models import build_network
from cnnexp.models.modules import L2Pool1d, L2Pool3d
from tests.test_models import model_settings

SERIES = DataFacts((2, 100), ["a", "b"], 50, "data.root=gunpoint")
VOLUMES = DataFacts((1, 8, 12, 10), ["a", "b", "c"], 30, "data.root=scans")


def small(name, shape, **overrides):
    """A model on `shape` with few channels: a 3-D network stays cheap on the CPU."""
    s = model_settings(name, input_shape=shape, **overrides)
    for n, channels in enumerate((4, 6, 8)[: len(s.blocks)]):
        s.blocks[n].channels = channels
    s.head.hidden = [16] if s.head.hidden else []
    return s


# ------------------------------------------------------------------ the formulas against PyTorch
@hsettings(max_examples=20, deadline=None)  # three layer kinds in two dimensions each: fewer than the profile
@given(i=st.integers(1, 30), k=st.integers(1, 7), s=st.integers(1, 4), d=st.integers(1, 3), data=st.data())
def test_1d_and_3d_conv_pool_and_transposed_formulas_match_pytorch(i, k, s, d, data):
    p = data.draw(st.integers(0, 3))
    o = conv_out(i, k, s, p, d)
    assume(o >= 1)
    assert nn.Conv1d(1, 1, k, s, p, d)(torch.zeros(1, 1, i)).shape[-1] == o
    assert nn.Conv3d(1, 1, (k, 1, k), (s, 1, s), (p, 0, p), (d, 1, d))(torch.zeros(1, 1, i, 2, i)).shape[-3::2] == (o, o)
    pp = data.draw(st.integers(0, k // 2))
    po = conv_out(i, k, s, pp)
    if po >= 1:
        for pool in (nn.MaxPool1d(k, s, pp), nn.AvgPool1d(k, s, pp), L2Pool1d(k, s, pp)):
            assert pool(torch.rand(1, 2, i)).shape[-1] == po, pool
        if i >= k:  # torch's avg_pool3d wants the window within the unpadded input (the plan refuses less)
            assert L2Pool3d(k, s, pp)(torch.rand(1, 1, i, i, k + 2)).shape[-3:-1] == (po, po)
    a = data.draw(st.integers(0, max(s, d) - 1))
    t = transposed_out(i, k, s, p, a, d)
    if t >= 1:
        assert nn.ConvTranspose1d(1, 1, k, s, p, a, dilation=d)(torch.zeros(1, 1, i)).shape[-1] == t


AXIS_VALUE = st.integers(1, 5)


@pytest.mark.slow  # ~20 s of whole networks; test_1d_and_3d_reference_networks_run is the default run's
@hsettings(max_examples=20, deadline=None)  # whole networks built and run: fewer
@given(dims=st.sampled_from([1, 3]), data=st.data(), s=st.integers(1, 2),
       padding=st.sampled_from([0, 1, "same", "valid"]), pool=st.sampled_from(["max", "avg", "l2", "none"]),
       norm=st.sampled_from(["none", "batch", "group"]), blocks=st.integers(1, 3), pool_first=st.booleans())
@pytest.mark.parametrize("name", ["cnn3", "convae"])
def test_whole_1d_and_3d_networks_match_their_plan(name, dims, data, s, padding, pool, norm, blocks, pool_first):
    size = data.draw(st.lists(st.integers(4, 40 if dims == 1 else 11), min_size=dims, max_size=dims))
    k = data.draw(st.one_of(AXIS_VALUE, st.lists(AXIS_VALUE, min_size=dims, max_size=dims)))
    base = small(name, [2, *size], kernel_size=k, stride=s, padding=padding, pool=pool, norm=norm, norm_groups=2,
                 pool_first=pool_first)
    base.blocks = base.blocks[:blocks]
    try:
        layers = plan(base)
    except ShapeError:  # cannot be built: the check's job (tested below)
        layers = None
    assume(layers is not None)
    net = build_network(base).eval()
    x = torch.randn(2, 2, *size)
    encoder_out = [l for l in layers if l.block.startswith("block")][-1].out_shape
    assert tuple(net.features(x).shape[1:]) == encoder_out
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv1d, nn.Conv3d))]
    assert convs and all(c.weight.dim() == 2 + dims for c in convs), "Conv1d on a series, Conv3d on a volume"
    assert sum(p.numel() for p in net.parameters()) == sum(l.params for l in layers)
    out = net(x)
    assert out.shape == (x.shape if name == "convae" else (2, base.num_classes))


@pytest.mark.parametrize("name, shape", [("cnn3", [2, 50]), ("convae", [1, 6, 10, 9]), ("speed", [3, 8, 8, 8])])
def test_1d_and_3d_reference_networks_run(name, shape):
    s = small(name, shape, padding="same", kernel_size=[3] * (len(shape) - 1), norm="batch")
    layers, net = plan(s), build_network(s).eval()
    out = net(torch.randn(2, *shape))
    assert out.shape == ((2, *shape) if name == "convae" else (2, s.num_classes))
    assert sum(p.numel() for p in net.parameters()) == sum(l.params for l in layers)


# ------------------------------------------------------------------ the plan and its table, no torch
def test_a_series_plan_counts_its_weights_macs_and_receptive_field():
    layers = plan(small("cnn3", [2, 100], kernel_size=7, padding="same"))
    conv = layers[0]
    assert (conv.in_shape, conv.out_shape, conv.kernel, conv.rf) == ((2, 100), (4, 100), 7, 7)
    assert conv.params == 4 * 2 * 7 + 4 and conv.macs == 4 * 100 * 2 * 7
    assert [l.out_shape for l in layers if l.kind == "maxpool"] == [(4, 50), (6, 25), (8, 13)]
    assert layers[-3].out_shape == (8 * 13,), "flatten: channels × steps"


def test_a_volume_with_one_kernel_per_axis_prints_each_axis():
    layers = plan(small("cnn3", [1, 8, 12, 10], kernel_size=[3, 5, 1], padding=[1, 2, 0], pool="none"))
    conv = layers[0]
    assert conv.kernel == (3, 5, 1) and conv.padding == (1, 2, 0) and conv.out_shape == (4, 8, 12, 10)
    assert conv.params == 4 * 15 + 4 and conv.rf == (3, 5, 1)
    table = format_table(layers)
    assert "3×5×1" in table and "1×2×0" in table and "1×8×12×10" in table
    assert table_json(layers)["layers"][0]["kernel"] == [3, 5, 1]
    two_d = format_table(plan(model_settings("cnn3")))
    assert "block1  conv     3  1  1  1×28×28" in two_d, "a square 2-D kernel prints as one number, as before"


def test_a_3d_autoencoder_mirrors_an_asymmetric_same_on_every_axis():
    layers = plan(small("convae", [1, 7, 9, 10], padding="same", kernel_size=4))
    decoder = [l for l in layers if l.kind == "convT"]
    assert decoder[-1].out_shape == (1, 7, 9, 10) and decoder[-1].crop is not None
    assert all(len(l.output_padding) == 3 and len(l.pads) == 3 for l in decoder)


# ------------------------------------------------------------------ the settings check, one line each
def check(s, data):
    _check_model(s, data)
    _check_plan(s)
    return s


def test_auto_follows_the_data_in_one_and_three_dimensions():
    assert check(model_settings("cnn3", input_shape="auto", num_classes="auto"), SERIES).input_shape == [2, 100]
    assert check(small("convae", "auto", num_classes="auto"), VOLUMES).layers[-1].out_shape == (1, 8, 12, 10)


@pytest.mark.parametrize("overrides, data, key, words", [
    ({"input_shape": [1, 28, 28]}, SERIES, "model.input_shape",
     "data.root=gunpoint holds 2×100 series (channels×length) — a 1-D input, where [1, 28, 28] is 2-D"),
    ({"input_shape": [2, 90]}, SERIES, "model.input_shape", "so the network must take [2, 100]"),
    ({"input_shape": [1, 2, 3, 4, 5]}, SERIES, "model.input_shape", "2 to 4 integers ≥ 1"),
    ({"kernel_size": [3, 3]}, SERIES, "model.kernel_size", "one per spatial axis of the 1-D input (length)"),
    ({"blocks.1.pool_kernel": [2, 2]}, VOLUMES, "model.blocks.1.pool_kernel", "or 3 — one per spatial axis"),
    ({"stride": [1, 0, 1]}, VOLUMES, "model.stride", "an integer ≥ 1 (or one per spatial axis"),
    ({"padding": [1, "same", 1]}, VOLUMES, "model.padding", '"same" or "valid"'),
])
def test_a_bad_shape_or_axis_list_names_its_flag(overrides, data, key, words):
    s = model_settings("cnn3", **{"input_shape": "auto", "num_classes": "auto", **overrides})
    with pytest.raises(SettingsError) as e:
        check(s, data)
    assert e.value.key == key and words in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_a_kernel_longer_than_a_short_series_is_one_line_with_fixes():
    short = DataFacts((1, 6), ["a", "b"], 10, "data.root=tiny")
    with pytest.raises(ShapeError) as e:
        check(model_settings("cnn3", input_shape="auto", num_classes="auto", kernel_size=9, padding=0), short)
    first, *tries = str(e.value).splitlines()
    assert first == ("block1 conv: ⌊(6 + 2·0 − 9)/1⌋ + 1 = −2 < 1 — the 9-tap kernel is larger than its "
                     "padded input (6 + 0).")
    assert tries and all(t.startswith("  try: ") for t in tries)
    for t in tries:  # each suggestion makes a plan that works
        fix = dict(pair.removeprefix("model.").split("=") for pair in t.split()[1:])
        fix = {k: int(v) if v.isdigit() else v for k, v in fix.items()}
        check(model_settings("cnn3", **{"input_shape": "auto", "num_classes": "auto", "kernel_size": 9, "padding": 0, **fix}), short)


# ------------------------------------------------------------------ the pictures
def test_a_series_kernel_walks_one_row_and_a_volume_draws_a_depth_slice(tmp_path):
    series = plan(small("cnn3", [1, 200], kernel_size=5, dilation=2, padding="same"))
    slide = scene.window(series[0])
    assert slide.rows == ("in",) and slide.cols.count("in") == scene.MAX_STEPS and slide.steps_cut == 200 - scene.MAX_STEPS
    assert [c for _, c in slide.frames[1].taps] == [1 + 2 * j for j in range(5)], "taps d apart, one step on"
    assert "the first 32 of 200 steps drawn" in slide.heading
    volume = plan(small("cnn3", [1, 8, 12, 10], kernel_size=3, padding=1))
    slide = scene.window(volume[0])
    assert (slide.rows.count("in"), slide.cols.count("in")) == (12, 10) and len(slide.frames[0].taps) == 9
    assert "kernel 3×3×3" in slide.heading and "spans 3 depth slices" in slide.heading
    written = arithmetic.draw(series, tmp_path) + arithmetic.draw(
        plan(small("convae", [1, 40], padding="same", kernel_size=4)), tmp_path)
    assert (tmp_path / "block1_conv.gif").is_file() and (tmp_path / "decoder3_convT.png").is_file()
    assert not (tmp_path / "receptive_field.png").exists(), "a series' receptive field is the table's column"
    assert len(written) == 2 * 6 + 2 * 6


# ------------------------------------------------------------------ ONNX, 1-D and 3-D
@pytest.mark.slow  # two exports: ~20 s
@pytest.mark.parametrize("name, shape", [("cnn3", [2, 60]), ("convae", [1, 6, 10, 9])])
def test_onnx_export_of_a_1d_and_a_3d_network_keeps_parity(name, shape):
    pytest.importorskip("onnxruntime")
    from cnnexp.export import parity, to_onnx
    from cnnexp.models import onnx_network

    overrides = {"pool": "l2", "norm": "batch", "padding": "same"} if name == "cnn3" else {"padding": "same", "kernel_size": 4}
    net = build_network(small(name, shape, **overrides)).eval()
    x = torch.randn(5, *shape)
    with torch.no_grad():
        reference = net(x).numpy()
    data, exporter = to_onnx(net, x[:2])
    outputs = onnx_network.run(onnx_network.session(data, "test.onnx"), x.numpy())
    result = parity(reference, outputs, name == "cnn3", 1e-4)
    assert result["ok"] and outputs.shape == reference.shape, (exporter, result)
    assert np.isfinite(outputs).all()


# ------------------------------------------------------------------ the commands, on a series set
def test_shapes_of_a_series_set_and_a_kernel_longer_than_it(tmp_path, calibrated):
    from tests.helpers import cli

    x = np.random.default_rng(0).normal(size=(40, 2, 12)).astype(np.float32)
    y = np.array(["down", "up"] * 20)
    np.savez(tmp_path / "Tiny_TRAIN.npz", x=x, y=y)
    np.savez(tmp_path / "Tiny_TEST.npz", x=x[:10], y=y[:10])
    proc = cli("shapes", "data=series", f"data.root={tmp_path}", "model.pool=none", "model.kernel_size=5")
    assert proc.returncode == 0, proc.stderr
    assert "cnn3: input 2×12 (1-D: channels×length)" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.startswith("block1")).split()
    assert row[:9] == ["block1", "conv", "5", "1", "1", "2×12", "→", "32×10", "352"], proc.stdout
    out = tmp_path / "outputs"
    proc = cli("train", "data=series", f"data.root={tmp_path}", "model.kernel_size=15", "model.padding=0",
               f"paths.output_dir={out}")
    first, *tries = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and first == (
        "cnnexp: error: block1 conv: ⌊(12 + 2·0 − 15)/1⌋ + 1 = −2 < 1 — the 15-tap kernel is larger than its "
        "padded input (12 + 0)."), proc.stderr
    assert tries and all(t.startswith("  try: ") for t in tries) and not out.exists()
