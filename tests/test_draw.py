"""The arithmetic pictures (`shapes draw=DIR`) counted against the shape plan: what each picture
draws — kernel positions, padding cells, inserted zeros, output sizes, channel groups — is the
scene's data, held here against the plan's numbers. No torch, no training."""

from __future__ import annotations

import os

import pytest
from PIL import Image

from cnnexp.arithmetic import draw as arithmetic
from cnnexp.config import settings as settings_module
from cnnexp.arithmetic import scene
from cnnexp.arithmetic.animation import animation
from cnnexp.arithmetic.panels import hidden_note
from cnnexp.config.compose import compose_config
from cnnexp.arithmetic.geometry import effective_kernel, receptive_box
from cnnexp.shapes import main as shapes_main
from tests.helpers import SHARED_DATA

pytestmark = pytest.mark.xdist_group("test_draw")  # its module fixtures are built once, on one worker

NETWORKS = {
    "cnn3": [],
    "convae": ["model=convae"],
    "dilated": ["model.dilation=2"],
    "grouped": ["model.blocks.1.groups=32", "model.blocks.2.groups=64"],
    "same-stride2": ["model.padding=same", "model.stride=2", "model.pool=none"],
    "convae-same-k4": ["model=convae", "model.padding=same", "model.kernel_size=4"],  # a convT that crops
    "l2-avg-pools": ["model.blocks.0.pool=l2", "model.blocks.0.pool_kernel=3", "model.blocks.1.pool=avg"],
}


def plan_of(*overrides):
    return settings_module.load(compose_config([f"data.root={SHARED_DATA}", *overrides])).model.layers


@pytest.fixture(scope="module", params=list(NETWORKS))
def network(request):
    layers = [l for l in plan_of(*NETWORKS[request.param]) if scene.drawable(l)]
    return request.param, layers, [arithmetic.scenes(l) for l in layers]


def test_frames_are_the_output_positions(network):
    _, layers, scenes = network
    for layer, (slide, scatter) in zip(layers, scenes):
        out_h, out_w = slide.out
        assert slide.kept == tuple(layer.out_shape[1:]), (slide.name, slide.kept, layer.out_shape)
        assert len(slide.frames) + slide.hidden_rows * out_w == out_h * out_w, slide.name
        assert [f.cell for f in slide.frames] == [(r, c) for r in range(out_h - slide.hidden_rows) for c in range(out_w)]
        assert len(slide.frames) <= scene.MAX_FRAMES or out_w > scene.MAX_FRAMES
        assert slide.hidden_rows == 0 or out_h * out_w > scene.MAX_FRAMES, "small layers are drawn whole"
        d, s = slide.dilation, slide.stride
        for f in slide.frames[:3]:  # the footprint: k×k taps, d apart, s between positions
            rows = sorted({r for r, _ in f.taps})
            assert len(f.taps) == layer.kernel ** 2 and rows == [f.cell[0] * s + i * d for i in range(layer.kernel)]
        if len(slide.frames) > 1 and out_w > 1:
            assert slide.frames[1].taps[0][1] - slide.frames[0].taps[0][1] == s


def test_padding_cells_are_the_layer_padding(network):
    _, layers, scenes = network
    for layer, (slide, _) in zip(layers, scenes):
        if layer.kind == "convT":
            zeros, (before, after), a = layer.zeros_padding_extra
            assert slide.pads(0) == slide.pads(1) == (before, after), slide.name
            assert slide.rows.count("extra") == a == layer.output_padding[0]
        else:
            assert (slide.pads(0), slide.pads(1)) == layer.pads, slide.name
            assert slide.rows.count("in") == layer.in_shape[1] and slide.cols.count("in") == layer.in_shape[2]


def test_transposed_views_insert_s_minus_1_zeros_and_reach_the_same_size(network):
    name, layers, scenes = network
    transposed = [(l, sl, sc) for l, (sl, sc) in zip(layers, scenes) if l.kind == "convT"]
    assert bool(transposed) == name.startswith("convae")
    for layer, slide, scatter in transposed:
        assert set(slide.zeros_between(0)) == set(slide.zeros_between(1)) == {layer.stride - 1}, slide.name
        assert slide.rows.count("in") == layer.in_shape[1]
        assert scatter.out == slide.kept == tuple(layer.out_shape[1:]), slide.name
        before_crop = sum(k != "cut" for k in scatter.rows), sum(k != "cut" for k in scatter.cols)
        assert before_crop == slide.out, "the direct convolution's output is the transposed one's, before any crop"
        assert scatter.rows.count("cut") >= layer.padding and scatter.rows.index("out") == layer.padding + (layer.crop or (0,))[0]
        stamps = len(scatter.frames) + scatter.hidden_rows * scatter.inputs[1]
        assert stamps == layer.in_shape[1] * layer.in_shape[2], "one stamp per input cell"
    if name == "convae-same-k4":
        assert transposed[0][0].crop is not None and transposed[0][1].out != transposed[0][1].kept


def test_grouped_convolutions_read_their_groups_share():
    convs = [l for l in plan_of(*NETWORKS["grouped"]) if l.kind == "conv"]
    for layer in convs[1:]:
        g = scene.groups(layer)
        per = layer.in_shape[0] // layer.groups
        assert len(g.reads) == layer.out_shape[0] and all(hi - lo == per for lo, hi in g.reads)
        assert len(set(g.reads)) == layer.groups
        assert sorted(set(g.reads)) == [(n * per, (n + 1) * per) for n in range(layer.groups)], "the groups tile the inputs"
    assert "depthwise" in scene.groups(convs[1]).heading  # 32 groups of 32 inputs: one each


def test_pools_slide_their_window_with_their_stride():
    for layer in (l for l in plan_of(*NETWORKS["l2-avg-pools"]) if l.kind.endswith("pool")):
        slide = scene.window(layer)
        word = {"maxpool": "max", "avgpool": "average", "l2pool": "L2"}[layer.kind]
        assert f"{word} pool: window {layer.kernel}×{layer.kernel}, stride {layer.stride}" in slide.heading
        assert slide.frames[1].taps[0][1] - slide.frames[0].taps[0][1] == layer.stride
        assert layer.formula in slide.formula[0]


def test_receptive_field_boxes_are_the_rf_column():
    layers = [l for l in plan_of() if l.rf is not None and scene.drawable(l)]
    for layer in layers:
        x0, y0, x1, y1 = receptive_box(layer, 28, 28)
        inside = x0 > 0 and y0 > 0 and x1 < 28 and y1 < 28
        assert (x1 - x0 == layer.rf) if inside else (x1 - x0 <= layer.rf), (layer.block, layer.kind)
    assert [l.rf for l in layers] == [3, 4, 8, 10, 18, 26]


def test_draw_writes_a_gif_per_layer_with_a_frame_per_position(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # its cost line reads no user's calibration
    shapes_main([f"data.root={SHARED_DATA}", "model=convae", f"draw={tmp_path}"])
    captured = capsys.readouterr()
    assert "decoder3" in captured.out and "drew 13 pictures" in captured.err
    for layer in (l for l in plan_of("model=convae") if scene.drawable(l)):
        slide, _ = arithmetic.scenes(layer)
        with Image.open(tmp_path / f"{slide.name}.gif") as gif:
            assert gif.n_frames == len(slide.frames), slide.name
        with Image.open(tmp_path / f"{slide.name}.png") as still:
            assert still.width > 200 and still.height > 200
    assert (tmp_path / "receptive_field.png").is_file()


def test_grouped_network_draws_its_channel_groups(tmp_path):
    layers = plan_of(*NETWORKS["grouped"])
    written = {p.name for p in arithmetic.draw(layers, tmp_path)}
    assert {"block2_conv_groups.png", "block3_conv_groups.png"} <= written and "block1_conv_groups.png" not in written


def test_a_frame_is_drawn_per_position_and_the_sheet_summarises_the_rest():
    layer = plan_of()[0]  # block1 conv: 28×28 positions
    slide, _ = arithmetic.scenes(layer)
    assert slide.hidden_rows == 28 - len(slide.frames) // 28 and len(animation(slide)) == len(slide.frames)
    assert "… 26 more rows of positions (728 of 784)" in hidden_note(slide)


@pytest.mark.parametrize("where", ["file", "under-a-file", "unwritable"])
def test_a_bad_draw_folder_is_one_error_line(tmp_path, capsys, where):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    folder = {"file": a_file, "under-a-file": a_file / "pictures", "unwritable": tmp_path / "locked" / "pictures"}[where]
    if where == "unwritable":
        if os.geteuid() == 0:
            pytest.skip("root writes anywhere")
        (tmp_path / "locked").mkdir(mode=0o500)
    with pytest.raises(SystemExit) as exit_:
        shapes_main([f"data.root={SHARED_DATA}", f"draw={folder}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and err[0].startswith("cnnexp: error: draw="), err
    assert a_file.read_text() == "x"
