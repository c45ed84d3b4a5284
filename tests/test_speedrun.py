"""The speedrun's tricks (issue #29): each setting checked by name, test-time views that only
translate, and lookahead weights as the ones checkpointed and tested. Accuracy is measured by
`python -m cnnexp.bench recipes=speedrun ablate=true` (docs/performance.md), never asserted here."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import SHARED_DATA, cli

# (override, the key the error must name): each trick's setting with a value it refuses
BAD = [
    ("optimizer.betas=[0.9,1.5]", "optimizer.betas"),
    ("optimizer.betas=[0.9]", "optimizer.betas"),
    ("optimizer.nesterov=true", "optimizer.nesterov"),  # with adam
    ("lookahead.every=-1", "lookahead.every"),
    ("lookahead.decay=1.0", "lookahead.decay"),
    ("tta.shift=-1", "tta.shift"),
    ("tta.shift=14", "tta.shift"),
    ("tta.margin=0", "tta.margin"),
    ("tta.margin=1.5", "tta.margin"),
    ("model.pool_first=sometimes", "model.pool_first"),
    ("model.head.init=he", "model.head.init"),
    ("augment.shift=-1", "augment.shift"),
    ("augment.shift=14", "augment.shift"),
    ("augment.shift=1.5", "augment.shift"),
]


@pytest.mark.parametrize("override,key", BAD, ids=[b[0] for b in BAD])
def test_each_trick_setting_is_checked_by_name(override, key):
    from cnnexp.config.compose import compose_config
    from cnnexp.core.errors import SettingsError
    from cnnexp.config.settings import load

    with pytest.raises(SettingsError) as e:
        load(compose_config([f"data.root={SHARED_DATA}", "experiment=speedrun", override]))
    assert str(e.value).startswith(f"{key}="), str(e.value)


def test_a_bad_trick_setting_is_one_line_and_exit_2(tmp_path, calibrated):
    proc = cli("train", "experiment=speedrun", "tta.shift=-1", f"data.root={SHARED_DATA}", f"paths.output_dir={tmp_path}")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("cnnexp: error: tta.shift=-1") and not any(tmp_path.iterdir())


def test_shifted_views_translate_and_never_flip():
    from cnnexp.tasks.tta import shifted_views

    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 2:6, 3] = 1.0   # an L: mirrored, it is another shape
    x[0, 0, 5, 3:6] = 1.0
    views = shifted_views(x, 2)
    assert len(views) == 5 and torch.equal(views[0], x)
    ink = {tuple(torch.nonzero(v[0, 0])[0].tolist()) for v in views}  # each view's top-left ink pixel
    assert ink == {(2, 3), (0, 3), (4, 3), (2, 1), (2, 5)}  # itself, up, down, left, right by 2
    for v in views[1:]:
        assert v.sum() == x.sum(), "the L moved whole, nothing cut off"
        for flipped in (x.flip(-1), x.flip(-2)):
            for dy in range(-3, 4):
                for dx in range(-3, 4):
                    assert not torch.equal(v, torch.roll(flipped, (dy, dx), (-2, -1))), "a mirrored view"


def test_training_shifts_move_each_image_whole_by_its_own_offset():
    """augment.shift: every image of the batch is its own translation by at most `shift` pixels along
    each axis, nothing else (no flip, no cut beyond the border), and the offsets vary image to image."""
    from cnnexp.tasks.augment import random_shift

    torch.manual_seed(0)
    x = torch.full((64, 1, 12, 12), -0.5)
    x[:, 0, 4:8, 5] = 1.0      # an L well inside the border: any shift of ≤ 2 keeps it whole
    x[:, 0, 7, 5:8] = 1.0
    out = random_shift(x, 2)
    assert out.shape == x.shape and out.min() == x.min()  # the border filled with the background
    offsets = set()
    for image, shifted in zip(x, out):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(shifted, torch.roll(image, (dy, dx), (-2, -1)))]
        assert len(found) == 1, "each image is one translation of itself"
        offsets.add(found[0])
    assert len(offsets) > 10, offsets  # 25 possible offsets over 64 images: not one shared shift
    colour = torch.stack([torch.full((8, 12, 12), v) for v in (-2.0, 0.5, 3.0)], 1)  # (8, 3, 12, 12)
    colour[:, :, 5:7, 5:7] = 9.0
    moved = random_shift(colour, 3)
    for channel, background in enumerate((-2.0, 0.5, 3.0)):  # what enters is each channel's own background
        assert set(moved[:, channel].unique().tolist()) == {background, 9.0}


def test_close_calls_get_the_shifted_views_and_the_rest_keep_their_plain_answer():
    """margin < 1: an image whose top two classes are close is averaged over its five views, exactly
    as margin=1 averages every image; a confident one keeps its plain logits."""
    from cnnexp.tasks.tta import tta_logits

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    x = torch.randn(32, 1, 8, 8)
    with torch.no_grad():
        plain, every = net(x), tta_logits(net, x, 1, margin=1.0)
        chosen = tta_logits(net, x, 1, margin=0.3)
    top2 = plain.softmax(1).topk(2, 1).values
    close = top2[:, 0] - top2[:, 1] < 0.3
    assert 0 < close.sum() < len(x), "the seed gives both kinds"
    assert torch.allclose(chosen[close], every[close], atol=1e-6) and torch.equal(chosen[~close], plain[~close])


def test_lookahead_weights_are_checkpointed_and_tested(tmp_path):
    """Seven steps, a sync every 5: the network ends as the slow weights of step 5 (the last step takes
    them as they are), and best.ckpt — what the test loads — holds exactly those, not step 7's."""
    import lightning as L

    from cnnexp.callbacks.lookahead import Lookahead
    from cnnexp.config.compose import compose_config
    from cnnexp.data import make_datamodule
    from cnnexp.run.trainer import build_trainer
    from cnnexp.config.settings import load
    from cnnexp.core.catalogue import task_class

    settings = load(compose_config([f"data.root={SHARED_DATA}", "experiment=speedrun", "trainer.max_epochs=1",
                                    "trainer.limit_train_batches=7", "trainer.limit_val_batches=1",
                                    "trainer.limit_test_batches=1", "callbacks.progress_bar_refresh=0",
                                    "logger.tensorboard=false", "lookahead.every=5", "lookahead.decay=0.8"]))
    seen = {}

    class Probe(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):  # after Lookahead's
            seen[trainer.global_step] = {k: v.clone() for k, v in pl_module.net.state_dict().items()}

    L.seed_everything(0, verbose=False)
    datamodule = make_datamodule(settings)
    task = task_class(settings.model.task)(settings)
    trainer, _ = build_trainer(settings, tmp_path, [Probe()])
    assert any(isinstance(c, Lookahead) for c in trainer.callbacks)
    trainer.fit(task, datamodule=datamodule)
    saved = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    saved = {k.removeprefix("net."): v for k, v in saved.items() if k.startswith("net.")}
    weight = "features.block2.conv.weight"
    assert torch.equal(saved[weight], seen[5][weight]) and torch.equal(seen[7][weight], seen[5][weight])
    assert not torch.equal(seen[6][weight], seen[5][weight]), "step 6 trained on from the slow weights"
    tested = trainer.test(task, datamodule=datamodule, ckpt_path="best", verbose=False, weights_only=True)
    assert torch.equal(task.net.state_dict()[weight], seen[5][weight]) and tested[0]["test/acc"] >= 0



def test_pool_first_pools_before_the_norm_and_keeps_the_shapes():
    from cnnexp.config.compose import compose_config
    from cnnexp.models import build_network
    from cnnexp.config.settings import load

    nets = {first: build_network(load(compose_config([f"data.root={SHARED_DATA}", "model=speed",
                                                      f"model.pool_first={first}"])).model) for first in ("true", "false")}
    assert list(nets["true"].features.block2._modules) == ["conv", "pool", "norm", "relu"]
    assert list(nets["false"].features.block2._modules) == ["conv", "norm", "relu", "pool"]
    assert nets["true"].features.block2.norm.num_features == 32
    x = torch.zeros(2, 1, 28, 28)
    assert nets["true"](x).shape == nets["false"](x).shape == (2, 10)


@pytest.mark.slow  # ten short runs: the recipe and each variant of bench.ablation.ABLATIONS, through cnnexp.train
def test_bench_ablation_prints_every_variant(shared_data, calibrated):
    from cnnexp.bench.ablation import ABLATIONS

    proc = cli("bench", f"data.root={shared_data}", "recipes=speedrun", "ablate=true", "seeds=1",
               "trainer.limit_train_batches=3", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for variant in ["speedrun (as it is)", *ABLATIONS["speedrun"]]:
        row = next(line for line in proc.stdout.splitlines() if line.strip().startswith(variant))
        assert "(n=1)" in row and "failed" not in row, row
