"""Networks and the shape arithmetic, checked against the shapes PyTorch actually produces."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings as hsettings, strategies as st
from omegaconf import OmegaConf
from torch import nn

from cnnexp import CONF_DIR, config
from cnnexp.models import build_network
from cnnexp.models.geometry import ShapeError, conv_out, plan, same_pads, transposed_out
from cnnexp.models.layers import L2Pool2d
from cnnexp.models.table import format_table

MODEL_CONFIGS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


def model_settings(name="cnn3", **overrides):
    cfg = OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml")
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value)
    return config.load({"model": cfg}).model


def test_cnn3_is_the_reference_network():
    net = build_network(model_settings("cnn3"))
    assert sum(p.numel() for p in net.parameters()) == 1_379_557
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (1, 32, (3, 3), (1, 1), (1, 1)), (32, 64, (3, 3), (1, 1), (1, 1)), (64, 128, (3, 3), (1, 1), (1, 1))]
    pools = [m for m in net.modules() if isinstance(m, nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride, p.padding) for p in pools] == [(2, 2, 0), (2, 2, 0), (3, 2, 1)]
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(2048, 625), (625, 10)]
    dropout = [m for m in net.modules() if isinstance(m, nn.Dropout)]
    assert len(dropout) == 1 and dropout[0].p == 0.5
    bound = (6 / (2048 + 625)) ** 0.5  # Xavier-uniform: weights within ±sqrt(6 / (fan_in + fan_out))
    assert linears[0].weight.abs().max() <= bound and linears[0].weight.abs().max() > 0.9 * bound
    assert net(torch.zeros(5, 1, 28, 28)).shape == (5, 10)


@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_every_model_config_builds_and_runs(name):
    s = model_settings(name)
    net = build_network(s)
    out = net(torch.randn(2, *s.input_shape))
    expected = (2, *s.input_shape) if s.task == "reconstruction" else (2, s.num_classes)
    assert out.shape == expected
    assert sum(p.numel() for p in net.parameters()) == sum(l.params for l in plan(s))


def test_shape_table_of_cnn3():
    table = format_table(plan(model_settings("cnn3")))
    assert "128×4×4   →  2048" in table and "1,379,557" in table
    assert "⌊(7 + 2·1 − 3)/2⌋ + 1 = 4" in table


def test_shortcuts_set_every_block_and_one_block_can_differ():
    s = model_settings("cnn3", kernel_size=5, padding="same", pool="avg")
    assert {(b.kernel_size, b.padding, b.pool) for b in plan_blocks(s)} == {(5, "same", "avg")}
    s = model_settings("cnn3", **{"blocks.1.kernel_size": 7})
    assert [b.kernel_size for b in plan_blocks(s)] == [3, 7, 3]


def plan_blocks(s):
    from cnnexp.models.geometry import resolve_blocks

    return resolve_blocks(s)


def test_impossible_settings_name_the_layer_and_formula():
    # 28 → conv 22 → pool 11 → conv 5 → pool 2 → conv: the 7×7 kernel no longer fits
    with pytest.raises(ShapeError, match=r"block3 conv: ⌊\(2 \+ 2·0 − 7\)/1⌋ \+ 1 = −4 < 1"):
        plan(model_settings("cnn3", kernel_size=7, padding=0))
    with pytest.raises(ShapeError, match=r"block2 maxpool: ⌊\(1 \+ 2·0 − 2\)/2⌋ \+ 1 = 0 < 1"):
        plan(model_settings("cnn3", kernel_size=7, stride=2))
    with pytest.raises(ShapeError, match="block1 maxpool: padding 2 is more than half"):
        plan(model_settings("cnn3", **{"blocks.0.pool_padding": 2}))


# ------------------------------------------------------------------ the formulas against PyTorch
sizes, kernels, strides = st.integers(1, 40), st.integers(1, 9), st.integers(1, 5)


@hsettings(max_examples=300, deadline=None)
@given(i=sizes, k=kernels, s=strides, p=st.integers(0, 4))
def test_conv_formula_matches_pytorch(i, k, s, p):
    expected = conv_out(i, k, s, p)
    if expected < 1 or i + 2 * p < k:
        return
    y = nn.Conv2d(1, 1, k, s, p)(torch.zeros(1, 1, i, i + 1))
    assert y.shape[-2:] == (expected, conv_out(i + 1, k, s, p))


@hsettings(max_examples=300, deadline=None)
@given(i=sizes, k=kernels, s=strides, data=st.data())
def test_pool_formulas_match_pytorch(i, k, s, data):
    p = data.draw(st.integers(0, k // 2))
    expected = conv_out(i, k, s, p)
    if expected < 1:
        return
    x = torch.rand(1, 2, i, i)
    for pool in (nn.MaxPool2d(k, s, p), nn.AvgPool2d(k, s, p), L2Pool2d(k, s, p)):
        assert pool(x).shape[-1] == expected, pool


@hsettings(max_examples=300, deadline=None)
@given(i=sizes, k=kernels, s=strides)
def test_same_padding_gives_ceil_i_over_s(i, k, s):
    before, after = same_pads(i, k, s)
    y = nn.Conv2d(1, 1, k, s)(nn.functional.pad(torch.zeros(1, 1, i, i), (before, after, before, after)))
    assert y.shape[-1] == -(-i // s) and 0 <= after - before <= 1


@hsettings(max_examples=300, deadline=None)
@given(i=st.integers(1, 20), k=kernels, s=strides, data=st.data())
def test_transposed_formula_matches_pytorch(i, k, s, data):
    p = data.draw(st.integers(0, k - 1))
    a = data.draw(st.integers(0, s - 1))
    expected = transposed_out(i, k, s, p, a)
    if expected < 1:
        return
    y = nn.ConvTranspose2d(1, 1, k, s, p, output_padding=a)(torch.zeros(1, 1, i, i))
    assert y.shape[-1] == expected


@hsettings(max_examples=60, deadline=None)
@given(k=st.integers(1, 7), s=st.integers(1, 3), padding=st.sampled_from([0, 1, 2, "same", "valid"]),
       pool=st.sampled_from(["max", "avg", "l2", "none"]), blocks=st.integers(1, 3), h=st.integers(8, 32))
def test_whole_networks_match_their_plan(k, s, padding, pool, blocks, h):
    for name in ("cnn3", "convae"):
        base = model_settings(name, kernel_size=k, stride=s, padding=padding, pool=pool, input_shape=[1, h, h + 3])
        base.blocks = base.blocks[:blocks]
        try:
            layers = plan(base)
        except ShapeError:
            continue
        net = build_network(base).eval()
        x = torch.randn(1, 1, h, h + 3)
        feats = net.features(x)
        encoder_out = [l for l in layers if l.block.startswith("block")][-1].out_shape
        assert tuple(feats.shape[1:]) == encoder_out
        out = net(x)
        if name == "convae":
            assert out.shape == x.shape, "the reconstruction has exactly the input's size"


def test_shapes_command_prints_the_reference_table():
    from tests.conftest import cli

    proc = cli("shapes", "model=cnn3")
    assert proc.returncode == 0
    assert "128×4×4   →  2048" in proc.stdout and "1,379,557" in proc.stdout
    proc = cli("shapes", "model=convae", "model.padding=same", "model.kernel_size=4")
    assert proc.returncode == 0 and "1×28×28" in proc.stdout.splitlines()[-2]


@pytest.mark.parametrize("overrides, words", [
    (["model.kernel_size=7", "model.stride=2"], "block2 maxpool: ⌊(1 + 2·0 − 2)/2⌋ + 1 = 0 < 1"),
    (["model.kernel_size=7", "model.padding=0"], "block3 conv: ⌊(2 + 2·0 − 7)/1⌋ + 1 = −4 < 1"),
    (["model.blocks.2.pool_padding=2"], "block3 maxpool: padding 2 is more than half the 3×3 window"),
    (["model.kernel_size=0"], "model.kernel_size=0 is not valid: an integer ≥ 1"),
    (["model.blocks.1.channels=-4"], "model.blocks.1.channels=-4 is not valid"),
    (["model.padding=-1"], "model.padding=-1 is not valid"),
])
def test_impossible_settings_stop_before_any_folder(tmp_path, overrides, words):
    from tests.conftest import cli

    out = tmp_path / "outputs"
    proc = cli("train", *overrides, f"paths.output_dir={out}")
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()
