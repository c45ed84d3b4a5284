"""Config composition, overrides, and the bad-input messages (checked before torch loads)."""

from __future__ import annotations

import dataclasses

import pytest
from cnnexp.config import settings as config
from cnnexp.config.compose import compose_config
from cnnexp.config.schema import TrainerSettings
from tests.helpers import cli


def composed(*overrides: str):
    return compose_config(list(overrides))


def test_defaults_compose_to_the_reference_recipe():
    s = config.load(composed())
    assert (s.model.name, s.optimizer.name, s.optimizer.lr) == ("cnn3", "adam", 1e-3)
    assert (s.data.batch_size, s.data.val_size, s.trainer.max_epochs) == (128, 5000, 15)
    assert s.trainer.accelerator == "auto"
    assert [b.channels for b in s.model.blocks] == [32, 64, 128]
    assert s.data.root.endswith("/data") and s.paths.output_dir.endswith("/outputs")


def test_overrides_reach_the_settings():
    s = config.load(composed("optimizer=sgd", "optimizer.lr=0.1", "data.batch_size=64",
                             "trainer.max_epochs=3", "seed=7", "model.blocks.1.kernel_size=5"))
    assert (s.optimizer.name, s.optimizer.lr, s.data.batch_size) == ("sgd", 0.1, 64)
    assert (s.trainer.max_epochs, s.seed, s.model.blocks[1].kernel_size) == (3, 7, 5)


def test_trainer_settings_are_real_trainer_arguments():
    import inspect

    import lightning as L

    accepted = set(inspect.signature(L.Trainer.__init__).parameters)
    ours = {f.name for f in dataclasses.fields(TrainerSettings)}
    assert ours <= accepted, f"not Trainer arguments: {ours - accepted}"


@pytest.mark.parametrize("override, key, words", [
    ("trainer.max_epochs=abc", "trainer.max_epochs", "expected an integer"),
    ("data.batch_size=0", "data.batch_size", "≥ 1"),
    ("optimizer.lr=-0.01", "optimizer.lr", "> 0"),
    ("+trainer.max_epoch=3", "trainer.max_epoch", "did you mean trainer.max_epochs"),
    ("model.pool=median", "model.pool", "max, avg, l2, none"),
    ("trainer.precision=8", "trainer.precision", "bf16-mixed"),
    ("callbacks.checkpoint.mode=up", "callbacks.checkpoint.mode", "auto, min or max"),
])
def test_bad_settings_name_the_key_and_what_is_allowed(override, key, words):
    """In-process: the message's words. That the CLI prints it as one line, exit 2 and no folder is
    tests/test_bad_input.py's (through the real CLI)."""
    from cnnexp.core.errors import UserError

    with pytest.raises(UserError) as raised:
        config.load(composed(override))
    message = str(raised.value)
    assert "\n" not in message and key in message and words in message, message


def test_settings_check_does_not_import_torch(tmp_path, calibrated):
    """The check must answer before the ~4 s torch/Lightning imports: they must not happen at all."""
    proc = cli("train", "data.batch_size=0", f"paths.output_dir={tmp_path}", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert proc.returncode == 2
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "hydra" in imported and "torch" not in imported and "lightning" not in imported


def test_unknown_key_and_group_option_are_one_line(tmp_path, calibrated):
    proc = cli("train", "trainer.max_epoch=3", f"paths.output_dir={tmp_path / 'o'}")
    assert proc.returncode == 2 and "trainer.max_epoch" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("train", "model=cnn4", f"paths.output_dir={tmp_path / 'o'}")
    assert proc.returncode == 2 and proc.stderr.strip() == \
        "cnnexp: error: model='cnn4' is not valid: one of cnn3, convae, own, speed (conf/model/)", proc.stderr
    assert not (tmp_path / "o").exists()


def test_unwritable_output_folder_is_reported(tmp_path, calibrated):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = cli("train", f"paths.output_dir={blocker / 'outputs'}")
    assert proc.returncode == 2
    assert "paths.output_dir" in proc.stderr and "not a folder" in proc.stderr
    assert blocker.read_text() == "not a folder"


def test_an_unknown_key_is_one_line_that_fits_a_terminal():
    """Issue #42: the line listed all 17 keys of model (~280 columns); now the nearest few, and
    where to see them all."""
    from cnnexp.config.messages import unknown_key
    from cnnexp.config.schema import Settings

    lines = {key: f"cnnexp: error: {unknown_key(Settings, key, 'mnist')}" for key in
             ("model.foo", "model.kernal_size", "optimizer.lrr", "data.image_size", "trainer.max_epoch")}
    assert all(len(line) <= 100 and "\n" not in line for line in lines.values()), lines
    assert lines["model.foo"].endswith("model.foo: unknown key; nearest: pool, pool_first, norm_groups (all: --cfg job)")
    assert lines["model.kernal_size"].endswith("did you mean model.kernel_size?")
    assert "it is data=folder's" in lines["data.image_size"]
    assert unknown_key(Settings, "model.foo").key == "model.foo", "the error still names its flag"


def test_a_group_option_or_key_that_does_not_exist_is_one_line():
    """Hydra answers `optimizer=adamx` with a dozen lines and exit 1; cnnexp names the options."""
    from cnnexp.config.compose import check_override_keys
    from cnnexp.core.errors import SettingsError

    with pytest.raises(SettingsError, match="one of adam, adamw, sgd"):
        check_override_keys(["optimizer=adamx"])
    with pytest.raises(SettingsError, match="unknown key or config group; nearest groups: "):
        check_override_keys(["bogus=1"])
    with pytest.raises(SettingsError, match="leave experiment= out"):
        check_override_keys(["experiment=null"])
    check_override_keys(["seed=3", "model=speed", "logger=[tensorboard,mlflow]", "-m", "model=cnn3,speed"])


@pytest.mark.parametrize("patch, words", [
    ({"model": "abc", "data": {"name": "nope"}}, "data.name='nope' is not valid: one of mnist, folder"),
    ({"model": "abc"}, "model='abc' is not valid: a group of settings"),
    ({"optimizer": [1, 2]}, "optimizer=[1, 2] is not valid: a group of settings"),
    ({"data": "x"}, "data='x' is not valid: a group of settings"),
])
def test_a_record_whose_group_is_not_a_mapping_is_one_settings_error(patch, words):
    """A config.yaml handed over (resume=, eval run=) is read as data: a group that is not key: value
    lines, or an unknown data.name beside one, is a SettingsError naming it — never a TypeError."""
    from omegaconf import OmegaConf

    from cnnexp.core.errors import SettingsError

    record = {**OmegaConf.to_container(composed(), resolve=True), **patch}
    with pytest.raises(SettingsError, match=words.replace("[", r"\[").replace("]", r"\]")):
        config.load(record)


def test_replicate_keys_must_name_settings():
    """`sweep_options.replicate_keys=[nokey]` grouped nothing, silently; now refused before launch."""
    from cnnexp.core.errors import SettingsError

    with pytest.raises(SettingsError) as refused:
        config.load(composed("sweep_options.replicate_keys=[seed,nokey]"))
    assert refused.value.key == "sweep_options.replicate_keys" and "'nokey'" in str(refused.value)
    assert config.load(composed("sweep_options.replicate_keys=[seed,data.val_size]")).sweep_options.replicate_keys \
        == ["seed", "data.val_size"]


def test_log_every_n_steps_auto_gives_a_short_run_a_curve():
    assert config.load(composed("trainer.limit_train_batches=20")).trainer.log_every_n_steps == 1
    assert config.load(composed("trainer.limit_train_batches=200")).trainer.log_every_n_steps == 10
    assert 10 < config.load(composed()).trainer.log_every_n_steps <= 50, "a full MNIST epoch: ~20 points, at most 50 apart"
    assert config.load(composed("trainer.log_every_n_steps=7")).trainer.log_every_n_steps == 7
