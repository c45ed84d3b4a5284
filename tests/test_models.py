"""Networks and the shape arithmetic, checked against the shapes PyTorch actually produces."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, example, given, settings as hsettings, strategies as st
from omegaconf import OmegaConf
from torch import nn

from cnnexp import CONF_DIR
from cnnexp.config.schema import ModelSettings
from cnnexp.models import build_network
from cnnexp.core.errors import ShapeError
from cnnexp.arithmetic.geometry import conv_out, plan, same_pads, transposed_out
from cnnexp.models.modules import L2Pool2d
from cnnexp.arithmetic.table import format_table

# the built-in networks, built from the shape plan; model=own (your class) is tests/test_daily.py's
MODEL_CONFIGS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml") if p.stem != "own")


def model_settings(name="cnn3", **overrides):
    cfg = OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml")
    cfg.input_shape, cfg.num_classes = [1, 28, 28], 10  # what `auto` takes from MNIST
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value)
    # the model group alone, typed but not checked: tests build impossible ones on purpose
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelSettings), cfg))


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
    from cnnexp.arithmetic.geometry import resolve_blocks

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


@hsettings(deadline=None)  # examples: the profile (conftest.py)
@given(i=sizes, k=kernels, s=strides, p=st.integers(0, 4))
def test_conv_formula_matches_pytorch(i, k, s, p):
    expected = conv_out(i, k, s, p)
    assume(expected >= 1 and i + 2 * p >= k)
    y = nn.Conv2d(1, 1, k, s, p)(torch.zeros(1, 1, i, i + 1))
    assert y.shape[-2:] == (expected, conv_out(i + 1, k, s, p))


@hsettings(deadline=None)  # examples: the profile (conftest.py)
@given(i=sizes, k=kernels, s=strides, data=st.data())
def test_pool_formulas_match_pytorch(i, k, s, data):
    p = data.draw(st.integers(0, k // 2))
    expected = conv_out(i, k, s, p)
    assume(expected >= 1)
    x = torch.rand(1, 2, i, i)
    for pool in (nn.MaxPool2d(k, s, p), nn.AvgPool2d(k, s, p), L2Pool2d(k, s, p)):
        assert pool(x).shape[-1] == expected, pool


@hsettings(deadline=None)  # examples: the profile (conftest.py)
@given(i=sizes, k=kernels, s=strides)
def test_same_padding_gives_ceil_i_over_s(i, k, s):
    before, after = same_pads(i, k, s)
    y = nn.Conv2d(1, 1, k, s)(nn.functional.pad(torch.zeros(1, 1, i, i), (before, after, before, after)))
    assert y.shape[-1] == -(-i // s) and 0 <= after - before <= 1


@hsettings(deadline=None)  # examples: the profile (conftest.py)
@given(i=st.integers(1, 20), k=kernels, s=strides, data=st.data())
def test_transposed_formula_matches_pytorch(i, k, s, data):
    p = data.draw(st.integers(0, k - 1))
    a = data.draw(st.integers(0, s - 1))
    expected = transposed_out(i, k, s, p, a)
    assume(expected >= 1)
    y = nn.ConvTranspose2d(1, 1, k, s, p, output_padding=a)(torch.zeros(1, 1, i, i))
    assert y.shape[-1] == expected


@hsettings(max_examples=30, deadline=None)  # whole networks built and run: fewer
@given(k=st.integers(1, 7), s=st.integers(1, 3), padding=st.sampled_from([0, 1, 2, "same", "valid"]),
       pool=st.sampled_from(["max", "avg", "l2", "none"]), blocks=st.integers(1, 3), h=st.integers(8, 32))
@example(k=3, s=3, padding="same", pool="none", blocks=2, h=8)  # "same" on 3×4: rows unpadded, columns 1 each side
@pytest.mark.parametrize("name", ["cnn3", "convae"])
def test_whole_networks_match_their_plan(name, k, s, padding, pool, blocks, h):
    base = model_settings(name, kernel_size=k, stride=s, padding=padding, pool=pool, input_shape=[1, h, h + 3])
    base.blocks = base.blocks[:blocks]
    try:
        layers = plan(base)
    except ShapeError:  # a network that cannot be built: the shape check's job, tested apart
        layers = None
    assume(layers is not None)
    net = build_network(base).eval()
    x = torch.randn(1, 1, h, h + 3)
    feats = net.features(x)
    encoder_out = [l for l in layers if l.block.startswith("block")][-1].out_shape
    assert tuple(feats.shape[1:]) == encoder_out
    out = net(x)
    if name == "convae":
        assert out.shape == x.shape, "the reconstruction has exactly the input's size"


def test_shapes_command_prints_the_reference_table(calibrated):
    from tests.helpers import cli

    proc = cli("shapes", "model=cnn3")
    assert proc.returncode == 0
    assert "128×4×4   →  2048" in proc.stdout and "1,379,557" in proc.stdout
    proc = cli("shapes", "model=convae", "model.padding=same", "model.kernel_size=4")
    lines = proc.stdout.splitlines()
    total = next(i for i, line in enumerate(lines) if line.startswith("total"))
    assert proc.returncode == 0 and "1×28×28" in lines[total - 1], "the decoder ends at the input's shape"


@pytest.mark.parametrize("overrides, words", [
    (["model.kernel_size=7", "model.stride=2"], "block2 maxpool: ⌊(1 + 2·0 − 2)/2⌋ + 1 = 0 < 1"),
    (["model.kernel_size=7", "model.padding=0"], "block3 conv: ⌊(2 + 2·0 − 7)/1⌋ + 1 = −4 < 1"),
    (["model.blocks.2.pool_padding=2"], "block3 maxpool: padding 2 is more than half the 3×3 window"),
    (["model.kernel_size=0"], "model.kernel_size=0 is not valid: an integer ≥ 1"),
    (["model.kernel_size=99999999999999999999"], "try: model.kernel_size=5"),  # fixes found at once, not by counting down
    (["model.blocks.1.channels=-4"], "model.blocks.1.channels=-4 is not valid"),
    (["model.padding=-1"], "model.padding=-1 is not valid"),
])
def test_impossible_settings_stop_before_any_folder(tmp_path, overrides, words, calibrated):
    from tests.helpers import cli

    out = tmp_path / "outputs"
    proc = cli("train", *overrides, f"paths.output_dir={out}")
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("cnnexp: error:") and all(l.startswith("  try: ") for l in lines[1:])
    assert not out.exists()


# ------------------------------------------------------------------ norm, activation, dilation, groups
VARIANTS = [
    {"norm": "batch", "activation": "gelu"},
    {"norm": "group", "norm_groups": 8, "activation": "silu"},
    {"activation": "leaky_relu", "dilation": 2, "padding": "same"},
    {"blocks.1.groups": 32, "blocks.2.groups": 64, "blocks.2.norm": "batch"},
    {"activation": "none", "bias": False, "pool": "avg"},
]


@pytest.mark.parametrize("overrides", VARIANTS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_block_options_build_what_the_plan_says(overrides):
    s = model_settings("cnn3", **overrides)
    layers = plan(s)
    net = build_network(s).eval()
    assert sum(p.numel() for p in net.parameters()) == sum(l.params for l in layers)
    x = torch.randn(2, 1, 28, 28)
    for block, module in net.features.named_children():
        x = module(x)
        assert tuple(x.shape[1:]) == [l for l in layers if l.block == block][-1].out_shape
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    rows = [l for l in layers if l.kind == "conv"]
    assert [(c.dilation[0], c.groups, c.bias is not None) for c in convs] == [(l.dilation, l.groups, l.bias) for l in rows]
    norms = [m for m in net.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))]
    assert len(norms) == len([l for l in layers if l.kind.endswith("norm")])
    if overrides.get("norm") == "batch":
        assert all(c.bias is None for c in convs), "bias is off when a norm follows"


def test_depthwise_and_dilation_shapes_follow_the_formulas():
    s = model_settings("cnn3", **{"blocks.1.dilation": 3, "blocks.1.padding": 0})
    conv = [l for l in plan(s) if l.kind == "conv"][1]
    assert conv.out_shape[1] == conv_out(14, 3, 1, 0, 3) == 14 - 2 * 3


@hsettings(deadline=None)  # examples: the profile (conftest.py)
@given(i=sizes, k=kernels, s=strides, p=st.integers(0, 4), d=st.integers(1, 4), g=st.sampled_from([1, 2, 4]))
def test_dilated_grouped_conv_formula_matches_pytorch(i, k, s, p, d, g):
    expected = conv_out(i, k, s, p, d)
    assume(expected >= 1)
    y = nn.Conv2d(4, 8, k, s, p, dilation=d, groups=g)(torch.zeros(1, 4, i, i))
    assert y.shape[-1] == expected
    before, after = same_pads(i, k, s, d)
    y = nn.Conv2d(4, 4, k, s, dilation=d, groups=g)(nn.functional.pad(torch.zeros(1, 4, i, i), (before, after, before, after)))
    assert y.shape[-1] == -(-i // s)


def test_receptive_field_matches_the_gradient_of_one_unit():
    """Brute force: the input pixels with a non-zero gradient for the centre unit of each block."""
    s = model_settings("cnn3", pool="avg", activation="none")  # same geometry, every path linear
    net = build_network(s).eval()
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    convs = [l for l in plan(s) if l.kind == "conv"]
    for n, row in enumerate(convs):
        x = torch.ones(1, 1, 28, 28, requires_grad=True)
        h = x
        for block in list(net.features)[:n]:
            h = block(h)
        h = net.features[n].conv(h)
        cy, cx = h.shape[-2] // 2, h.shape[-1] // 2
        h[0, 0, cy, cx].backward()
        rows, cols = torch.nonzero(x.grad[0, 0].abs().sum(1)), torch.nonzero(x.grad[0, 0].abs().sum(0))
        assert rows.max() - rows.min() + 1 == row.rf == cols.max() - cols.min() + 1, (row.block, row.rf)
        assert (rows.max() + rows.min()).item() / 2 == row.start + cy * row.jump
    assert [r.rf for r in convs] == [3, 8, 18] and [r.jump for r in convs] == [1, 2, 4]


@pytest.mark.parametrize("name, overrides", [("cnn3", {}), ("cnn3", VARIANTS[3]), ("cnn3", VARIANTS[2]),
                                             ("convae", {}), ("convae", {"padding": "same", "kernel_size": 4})])
def test_macs_match_torch_flop_counter(name, overrides):
    from torch.utils.flop_counter import FlopCounterMode

    from cnnexp.arithmetic.geometry import total_macs

    s = model_settings(name, **overrides)
    net = build_network(s).eval()
    with FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, 1, 28, 28))
    assert counter.get_total_flops() == 2 * total_macs(plan(s))


@pytest.mark.parametrize("overrides", [{}, {"padding": "same", "kernel_size": 4}, {"kernel_size": 5, "padding": 2},
                                       {"dilation": 2, "padding": 2}])
def test_transposed_rows_equal_a_plain_conv_over_zero_inserted_input(overrides):
    s = model_settings("convae", **overrides)
    for row in (l for l in plan(s) if l.kind == "convT"):
        zeros, (before, after), a = row.zeros_padding_extra
        c, h, w = row.in_shape
        stretched = torch.zeros(1, c, (h - 1) * (zeros + 1) + 1, (w - 1) * (zeros + 1) + 1)
        padded = nn.functional.pad(stretched, (before, after + a, before, after + a))
        plain = nn.Conv2d(c, row.out_shape[0], row.kernel, 1, dilation=row.dilation)(padded)
        transposed = nn.ConvTranspose2d(c, row.out_shape[0], row.kernel, row.stride, row.padding,
                                        output_padding=row.output_padding, dilation=row.dilation)(torch.zeros(1, c, h, w))
        assert plain.shape == transposed.shape, row


@pytest.mark.parametrize("overrides", [["model.kernel_size=7", "model.stride=2"], ["model.kernel_size=9", "model.padding=0"],
                                       ["model.blocks.2.pool_padding=2"], ["model.dilation=5", "model.padding=0"]])
def test_every_suggested_fix_passes_the_shape_check(overrides, calibrated):
    from tests.helpers import cli

    proc = cli("shapes", *overrides)
    assert proc.returncode == 2
    tries = [l.split("try:", 1)[1].split() for l in proc.stderr.splitlines() if l.strip().startswith("try:")]
    assert 1 <= len(tries) <= 3, proc.stderr
    for fix in tries:
        ok = cli("shapes", *overrides, *fix)
        assert ok.returncode == 0, (fix, ok.stderr)


def test_shapes_json_has_the_table_rows(calibrated):
    import json

    from tests.helpers import cli

    proc = cli("shapes", "model=cnn3", "json=true")
    assert proc.returncode == 0, proc.stderr
    table = json.loads(proc.stdout)
    first = table["layers"][0]
    assert {"block", "kind", "kernel", "stride", "padding", "dilation", "in_shape", "out_shape", "params", "rf",
            "jump", "macs"} <= set(first)
    assert table["total"]["params"] == 1_379_557 and table["total"]["macs"] == 8_737_386
    decoder = json.loads(cli("shapes", "model=convae", "json=true").stdout)["layers"][-1]
    assert decoder["kind"] == "convT" and decoder["zeros_inserted"] == 1 and decoder["extra"] == 1
