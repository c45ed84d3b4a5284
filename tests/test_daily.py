"""What a researcher reaches for every day (issue #42, items 1–4): early stopping, their own
network (`model=own`), system metrics, and W&B — on real MNIST, as a user types them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import QUICK, SHARED_DATA, cli, only_run_dir

OWN = ["model=own", "model._target_=tests.own_nets.TinyNet"]  # tests/own_nets.py, importable from the checkout
TINY = [*QUICK, "trainer.limit_train_batches=5", "trainer.max_epochs=1"]


def _load(*overrides):
    from cnnexp.config.compose import compose_config
    from cnnexp.config.settings import load

    return load(compose_config([f"data.root={SHARED_DATA}", *overrides]))


def _refused(*overrides) -> str:
    from cnnexp.core.errors import UserError

    with pytest.raises(UserError) as raised:
        _load(*overrides)
    assert "\n" not in str(raised.value)
    return str(raised.value)


def _scalars(run: Path, prefix: str) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = {}
    for events in sorted(run.glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"images": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            if tag.startswith(prefix):
                found.setdefault(tag, []).extend(e.value for e in accumulator.Scalars(tag))
    return found


# ------------------------------------------------------------------ the settings, in one line each
@pytest.mark.parametrize("override, key", [
    ("callbacks.early_stopping.patience=-1", "callbacks.early_stopping.patience"),
    ("callbacks.early_stopping.min_delta=nan", "callbacks.early_stopping.min_delta"),
    ("callbacks.system_metrics.every_s=-5", "callbacks.system_metrics.every_s"),
])
def test_daily_settings_are_checked_in_one_line(override, key):
    assert _refused(override).startswith(key)


def test_early_stopping_is_off_by_default_and_follows_the_monitor():
    plain = _load()
    assert plain.callbacks.early_stopping.patience == 0 and plain.callbacks.system_metrics.every_s > 0
    s = _load("model=convae", "callbacks.early_stopping.patience=3")
    assert (s.callbacks.checkpoint.monitor, s.callbacks.checkpoint.mode) == ("val/loss", "min")


def test_an_own_network_is_checked_by_a_dry_forward():
    """Shapes, parameters and MACs from the meta device; the constructor's argument without `+`."""
    s = _load(*OWN, "model.width=4")
    assert s.model.arguments == {"width": 4} and s.model.input_shape == [1, 28, 28] and s.model.num_classes == 10
    convs = [layer for layer in s.model.layers if layer.kind == "Conv2d"]
    assert [c.out_shape for c in convs] == [(4, 28, 28), (8, 14, 14)]
    assert convs[0].params == 4 * 9 + 4 and convs[0].macs == 4 * 28 * 28 * 9
    from cnnexp.arithmetic.geometry import total_params

    from cnnexp.config.own_network import build

    assert total_params(s.model.layers) == sum(p.numel() for p in build(s.model).parameters())
    import dataclasses

    from cnnexp.config.own_network import as_typed
    from cnnexp.tracking.hparams import flat_hparams

    shown = flat_hparams(as_typed(dataclasses.asdict(s)))  # newcomer 7: HParams told own networks apart by nothing
    assert shown["model._target_"] == "tests.own_nets.TinyNet" and shown["model.width"] == 4
    assert shown["data.name"] == "mnist"


def test_a_lightning_module_is_taken_as_the_network():
    s = _load("model=own", "model._target_=tests.own_nets.LitNet", "model.hidden=8")
    assert [layer.params for layer in s.model.layers if layer.kind == "Linear"] == [784 * 8 + 8, 8 * 10 + 10]


@pytest.mark.parametrize("overrides, words", [
    ([], "model=own needs your network's class: model._target_=package.module.Class"),
    (["model._target_=tests.own_nets.WrongOutput"], "output per image is 7, where the classification task needs 10"),
    (["model._target_=tests.own_nets.Missing"], "holds nothing named Missing"),
    (["model._target_=no_such_package.Net"], "cannot import no_such_package"),
    (["model._target_=tests.own_nets.TinyNet", "model.widht=3"], "did you mean model.width?"),
    (["model._target_=tests.own_nets.TinyNet", "model.width=abc"], "TinyNet(width='abc') failed"),
    (["model._target_=tests.own_nets.TinyNet", "model.num_classes=3"], "model.num_classes"),
])
def test_a_bad_own_network_is_one_line(overrides, words):
    assert words in _refused("model=own", *overrides)


@pytest.mark.slow  # a process that imports torch: seconds
def test_a_bad_own_network_leaves_no_folder(tmp_path, calibrated):
    proc = cli("train", *OWN[:1], "model._target_=tests.own_nets.WrongOutput", f"data.root={SHARED_DATA}",
               f"paths.output_dir={tmp_path / 'out'}")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("cnnexp: error: model._target_=")
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_wandb_mode_is_checked():
    assert _refused("logger=wandb", "logger.wandb.mode=sometimes").startswith("logger.wandb.mode")


def test_wandb_online_without_a_key_is_one_line_before_any_folder_for_a_run_and_a_grid(tmp_path, calibrated):
    """hostile2 W2: WANDB_MODE=online with no API key was a traceback and a failed run folder."""
    pytest.importorskip("wandb")
    no_key = {"WANDB_MODE": "online", "WANDB_API_KEY": "", "NETRC": str(tmp_path / "no-netrc")}
    for grid in ([], ["-m", "seed=1,2"]):
        proc = cli("train", *grid, "logger=wandb", f"paths.output_dir={tmp_path / 'out'}", env=no_key)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert proc.stderr.strip().splitlines()[-1].endswith(
            "logger.wandb.mode='online' is not valid: online needs a W&B API key (set WANDB_API_KEY, or run "
            "`wandb login`); or logger.wandb.mode=offline, and `wandb sync` later")
        assert not (tmp_path / "out").exists()
    bad_key = {**no_key, "WANDB_API_KEY": "abc"}  # verify pass NEW21: W&B's AuthenticationError mid-run
    proc = cli("train", "logger=wandb", f"paths.output_dir={tmp_path / 'out'}", env=bad_key)
    assert proc.returncode == 2 and "WANDB_API_KEY is not a W&B API key" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_a_grid_with_wandb_not_installed_is_refused_before_launch(tmp_path, calibrated):
    """hostile2 W1c: the grid launched, and each run failed on it. W&B hidden from this process only."""
    (tmp_path / "sitecustomize.py").write_text(
        "import importlib.machinery as m\n_find = m.PathFinder.find_spec.__func__\n"
        "m.PathFinder.find_spec = classmethod(lambda cls, name, path=None, target=None: None if "
        "name.partition('.')[0] == 'wandb' else _find(cls, name, path, target))\n")
    import os

    hidden = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = cli("train", "-m", "seed=1,2", "logger=wandb", f"paths.output_dir={tmp_path / 'out'}", env=hidden)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "cnnexp: error: every setting of this grid is refused before launch — seed=1: logger='wandb' is not "
        "valid: W&B is not installed: pip install 'cnnexp[wandb]'; seed=2: "), proc.stderr[-2000:]
    assert not (tmp_path / "out").exists()


def test_system_metrics_are_in_the_quick_runs_tensorboard(quick_run):
    """Each epoch's end samples them (the default every 10 s adds more on a long epoch)."""
    run, _ = quick_run
    found = _scalars(run, "system/")
    assert {"system/cpu_percent", "system/process_memory_mb"} <= set(found)
    assert all(v > 0 for v in found["system/process_memory_mb"]) and len(found["system/cpu_percent"]) >= 2


def _session_hparams(run: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    accumulator = EventAccumulator(str(run), size_guidance={"images": 0})
    accumulator.Reload()
    content = accumulator.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {k: v.string_value or v.number_value for k, v in info.hparams.items()}


def test_the_quick_runs_hparams_name_its_data(quick_run):
    """newcomer 7: runs of different data under one --logdir could not be told apart in HParams."""
    run, _ = quick_run
    assert _session_hparams(run)["data.name"] == "mnist"


# ------------------------------------------------------------------ trainings
@pytest.mark.slow
def test_early_stopping_stops_is_recorded_and_resumes(tmp_path, calibrated):
    """min_delta=0.5 on val/acc cannot be met: the run stops after patience=1 more validation, says so,
    and a resume with a larger patience goes on counting from the checkpoint's wait."""
    out = tmp_path / "out"
    args = [*QUICK, "trainer.limit_train_batches=3", "trainer.max_epochs=8", "test_after_fit=false",
            "callbacks.early_stopping.patience=1", "callbacks.early_stopping.min_delta=0.5", f"paths.output_dir={out}"]
    proc = cli("train", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = only_run_dir(out)
    record = json.loads((run / "results.json").read_text())
    stop = record["early_stopping"]
    assert record["status"] == "ok" and record["epochs"] == 2 and stop["stopped"] and stop["stopped_epoch"] == 1
    assert "val/acc did not improve by more than 0.5 in 1 validation" in stop["reason"]
    assert "early stopping: val/acc" in proc.stderr + proc.stdout
    proc = cli("train", f"resume={run}", "trainer.max_epochs=4", "callbacks.early_stopping.patience=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((run / "results.json").read_text())
    assert record["epochs"] == 4 and record["early_stopping"]["patience"] == 3
    assert "in 3 validations" in record["early_stopping"]["reason"], "the wait went on from the checkpoint's 1"
    assert record["extends"]["early_stopping"]["stopped_epoch"] == 1


@pytest.mark.slow
def test_an_own_network_trains_shows_and_exports_with_parity(tmp_path, calibrated):
    out = tmp_path / "out"
    proc = cli("train", *OWN, "model.width=4", *TINY, f"paths.output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = only_run_dir(out)
    assert "features.0  Conv2d" in (run / "shapes.txt").read_text()
    assert json.loads((run / "results.json").read_text())["status"] == "ok"
    assert _scalars(run, "epoch/val_acc") and _scalars(run, "system/cpu_percent")
    hparams = _session_hparams(run)
    assert hparams["model.width"] == 4 and hparams["model._target_"] == "tests.own_nets.TinyNet", hparams
    proc = cli("export", f"run={run}", "images=200")  # a folder's word imports no class: the user names it
    assert proc.returncode == 2 and "add model._target_=tests.own_nets.TinyNet" in proc.stderr, proc.stderr[-3000:]
    proc = cli("export", f"run={run}", "images=200", OWN[1])
    assert proc.returncode == 0 and "0 of 200 predictions differ" in proc.stdout + proc.stderr, proc.stderr[-3000:]


STOPS = ["trainer.max_epochs=3", "callbacks.early_stopping.patience=1", "callbacks.early_stopping.min_delta=0.5"]


@pytest.mark.slow
def test_a_sweep_over_an_own_networks_argument_stops_each_run_early(tmp_path, calibrated):
    proc = cli("train", "-m", *OWN, "model.width=2,4", *TINY, *STOPS, f"paths.output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {p.parent.name: json.loads(p.read_text()) for p in tmp_path.glob("multirun/*/*/*/results.json")}
    assert set(runs) == {"width=2", "width=4"} and all(r["status"] == "ok" for r in runs.values())
    assert runs["width=2"]["params"] < runs["width=4"]["params"]
    assert all(r["early_stopping"]["stopped_epoch"] == 1 and r["epochs"] == 2 for r in runs.values())


@pytest.mark.slow
def test_a_search_over_an_own_network_keeps_early_stopped_trials_complete(tmp_path, calibrated):
    """A trial stopped early is `ok` and COMPLETE in the study: the pruner did not stop it."""
    import optuna

    from cnnexp.search.study import STUDY_NAME, storage_url

    proc = cli("train", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2", *OWN, "model.width=choice(2,4)",
               *TINY, *STOPS, f"paths.output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = next(tmp_path.glob("multirun/*/*"))
    records = [json.loads(p.read_text()) for p in sweep.glob("*/results.json")]
    assert len(records) == 2 and all(r["status"] == "ok" and r["early_stopping"]["stopped"] for r in records)
    states = {t.state.name for t in optuna.load_study(study_name=STUDY_NAME, storage=storage_url(sweep)).get_trials()}
    assert states == {"COMPLETE"}


@pytest.mark.slow
def test_wandb_offline_writes_in_the_run_folder_and_a_resume_continues_it(tmp_path, calibrated):
    pytest.importorskip("wandb")
    out = tmp_path / "out"
    proc = cli("train", "logger=[tensorboard,wandb]", *TINY, f"paths.output_dir={out}", env={"WANDB_MODE": "offline"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = only_run_dir(out)
    run_id = json.loads((run / "results.json").read_text())["wandb_run_id"]
    first = list((run / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert len(first) == 1 and b"val/acc" in first[0].read_bytes()
    proc = cli("train", f"resume={run}", "trainer.max_epochs=2", env={"WANDB_MODE": "offline"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run / "results.json").read_text())["wandb_run_id"] == run_id
    assert len(list((run / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))) == 2, "the same W&B run"
