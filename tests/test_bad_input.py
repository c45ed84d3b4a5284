"""Bad input through the real CLI: one `cnnexp: error:` line, exit 2, no traceback, no new run
folder — and a finished run that a failed resume leaves byte for byte as it was."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import pytest
import torch

from tests.helpers import SHARED_DATA, SHORT, cli

pytestmark = pytest.mark.usefixtures("calibrated")  # its tests start runs

# (id, overrides): `python -m cnnexp.train` must refuse each before any folder exists.
TRAIN_CASES = [
    ("type", ["trainer.max_epochs=abc"]),
    ("range-batch", ["data.batch_size=0"]),
    ("range-lr", ["optimizer.lr=-0.01"]),
    ("added-typo", ["+trainer.max_epoch=3"]),
    ("choice-pool", ["model.pool=median"]),
    ("choice-precision", ["trainer.precision=8"]),
    ("typo-without-plus", ["trainer.max_epoch=3"]),
    ("typo-group-key", ["optimiser.lr=0.1"]),
    ("unicode-value", ["model.pool=máx"]),
    ("space-in-key", ["model. kernel_size=3"]),
    ("null-channels", ["model.blocks.0.channels=null"]),
    ("batch-above-split", ["data.batch_size=70000"]),
    ("runs-forever", ["trainer.max_epochs=-1", "trainer.max_steps=-1"]),
    ("input-shape-convae", ["model=convae", "model.input_shape=[1,20,20]"]),
    ("input-shape-colour", ["model.input_shape=[3,28,28]"]),
    ("num-nodes", ["trainer.num_nodes=0"]),
    ("val-every-0", ["trainer.check_val_every_n_epoch=0"]),
    ("val-interval", ["trainer.val_check_interval=100", "trainer.limit_train_batches=40"]),
    ("monitor-typo", ["callbacks.checkpoint.monitor=val/acc_typo"]),
    ("clip-negative", ["trainer.gradient_clip_val=-1"]),
    ("interpolation-key", ["model.name=${model.nonexistent}"]),
    ("interpolation-env", ["paths.output_dir=${oc.env:CNNEXP_UNSET_VARIABLE}"]),
    ("kernel-zero", ["model.kernel_size=0"]),
    ("norm", ["model.norm=bogus"]),
    ("activation", ["model.activation=bogus"]),
    ("dilation-zero", ["model.dilation=0"]),
    ("groups-not-dividing", ["model.blocks.1.groups=5"]),
    ("norm-groups-not-dividing", ["model.norm=group", "model.norm_groups=5"]),
    ("strategy", ["trainer.strategy=bogus"]),
    ("no-data", ["data.root=/nonexistent-cnnexp-data", "data.sources=[local]"]),
    ("resume-missing", ["resume=/nonexistent-cnnexp-run"]),
    ("dollar-in-folder", ["hydra.run.dir=/nonexistent-cnnexp-e$HOME"]),  # Lightning's logger would expand it
    ("folder-key-on-mnist", ["data.num_workers=1"]),  # Hydra's own many-line error, before check_override_keys knew the source
]
if not torch.cuda.is_available():
    TRAIN_CASES.append(("no-cuda", ["trainer.accelerator=cuda"]))


# (id, overrides, key the one line must name): refused in-process, by the same check the CLI runs
# before Hydra composes (compose.check_override_keys) and the settings check; the CLI's one line,
# exit 2 and no folder are TRAIN_CASES' (the same raise, through `fail`).
SETTINGS_CASES = [
    ("lr-inf", ["optimizer.lr=inf"], "optimizer.lr"),
    ("lr-nan", ["optimizer.lr=nan"], "optimizer.lr"),
    ("lr-zero", ["optimizer.lr=0"], "optimizer.lr"),
    ("max-lr-inf", ["scheduler=one_cycle", "scheduler.max_lr=inf"], "scheduler.max_lr"),
    ("weight-decay-inf", ["optimizer.weight_decay=inf"], "optimizer.weight_decay"),
    ("no-train-batches", ["trainer.limit_train_batches=0"], "trainer.limit_train_batches"),
    ("no-train-batch-fraction", ["trainer.limit_train_batches=0.0001"], "trainer.limit_train_batches"),
    ("no-val-but-val-monitor", ["trainer.limit_val_batches=0"], "trainer.limit_val_batches"),
    ("block-kernel-null", ["model.blocks.0.kernel_size=null"], "model.blocks.0.kernel_size"),
    ("folder-key-on-mnist", ["data.num_workers=1"], "data=folder"),
    ("folder-key-added-on-mnist", ["+data.num_workers=1"], "data=folder"),
    ("mnist-key-on-folder", ["data=folder", "data.root=.", "data.val_size=3"], "data=mnist"),
]


@pytest.mark.parametrize("overrides, key", [c[1:] for c in SETTINGS_CASES], ids=[c[0] for c in SETTINGS_CASES])
def test_settings_that_cannot_work_are_refused_naming_the_key(overrides, key):
    from cnnexp.config.compose import check_override_keys, compose_config
    from cnnexp.core.errors import UserError
    from cnnexp.config.settings import load

    with pytest.raises(UserError) as raised:
        check_override_keys([f"data.root={SHARED_DATA}", *overrides])
        load(compose_config([f"data.root={SHARED_DATA}", *overrides]))
    assert key in str(raised.value) and "\n" not in str(raised.value), str(raised.value)


def test_no_validation_is_allowed_when_nothing_monitors_it():
    from cnnexp.config.compose import compose_config
    from cnnexp.config.settings import load

    s = load(compose_config([f"data.root={SHARED_DATA}", "trainer.limit_val_batches=0",
                             "callbacks.checkpoint.monitor=train/loss", "model.kernel_size=null"]))
    assert s.trainer.limit_val_batches == 0 and s.model.blocks[0].kernel_size == 3


def one_error_line(proc) -> str:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    errors = [l for l in proc.stderr.splitlines() if l.startswith("cnnexp: error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    return errors[0]


@pytest.mark.parametrize("overrides", [c[1] for c in TRAIN_CASES], ids=[c[0] for c in TRAIN_CASES])
def test_train_refuses_with_one_line_and_no_folder(tmp_path, overrides):
    out = tmp_path / "outputs"
    args = list(overrides)
    if not any(o.startswith("data.root=") for o in overrides):
        args.insert(0, f"data.root={SHARED_DATA}")
    if not any(o.startswith("paths.output_dir=") for o in overrides):
        args.append(f"paths.output_dir={out}")
    proc = cli("train", *args)
    assert proc.returncode == 2, proc.stderr[-3000:]
    one_error_line(proc)
    assert not out.exists() or not any(out.rglob("*")), "a refused run must not leave a folder"


def test_sweep_with_a_typo_leaves_no_sweep_folder(tmp_path):
    out = tmp_path / "outputs"
    proc = cli("train", "-m", "model.kernel_size=3,5", "trainer.max_epoch=1", f"paths.output_dir={out}")
    assert proc.returncode == 2 and "did you mean trainer.max_epochs" in one_error_line(proc)
    assert not out.exists()


def png(path: Path, width: int, height: int, depth: int = 8, pixels: bytes | None = None) -> Path:
    """A greyscale PNG written by hand, so that its header can claim any size."""
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
    raw = pixels if pixels is not None else b"".join(b"\0" + bytes(width * depth // 8) for _ in range(min(height, 4)))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def test_other_entry_points_refuse_with_one_line(quick_run, tmp_path):
    # a truncated checkpoint, an unreadable image and an impossible shape: tests/test_runs.py, test_models.py
    run_dir, _ = quick_run
    bomb = png(tmp_path / "bomb.png", 20000, 20000)  # 400 megapixels claimed: PIL's bomb limit
    not_a_sweep = tmp_path / "plain"
    not_a_sweep.mkdir()
    cases = [
        ("eval", [f"run={tmp_path / 'missing'}"]),
        ("eval", [f"run={run_dir}", "split=train"]),
        ("predict", [f"run={run_dir}", f"images={bomb}"]),
        ("predict", [f"run={run_dir}", f"images={tmp_path / 'none-*.png'}"]),
        ("summary", [str(not_a_sweep)]),
        ("summary", [str(tmp_path / "missing")]),
    ]
    for module, args in cases:
        proc = cli(module, *args)
        assert proc.returncode == 2, (module, args, proc.stderr[-2000:])
        one_error_line(proc)
    assert not (not_a_sweep / "summary.csv").exists(), "summary writes nothing into a folder that is not a sweep"


# ------------------------------------------------------------------ failed resumes change nothing
def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".cnnexp.lock"}


@pytest.fixture
def finished_copy(quick_run, tmp_path):
    """A copy of a finished run (so that the shared run is never touched)."""
    copy = tmp_path / "copied-run"
    shutil.copytree(quick_run[0], copy)
    return copy


def truncate_last(run: Path) -> None:
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])


def truncate_best(run: Path) -> None:
    best = run / "checkpoints" / "best.ckpt"
    best.write_bytes(best.read_bytes()[:1000])


def foreign_last(run: Path) -> None:
    torch.save({"weights": torch.zeros(3)}, run / "checkpoints" / "last.ckpt")


def corrupt_config(run: Path) -> None:
    (run / "config.yaml").write_text("model: [unclosed\n  - {")


@pytest.mark.parametrize("spoil, extra, words", [
    (None, ["model=convae"], "only dotted overrides"),
    pytest.param(None, ["model.blocks.0.channels=64"], "weights do not fit", marks=pytest.mark.slow),
    pytest.param(None, ["trainer.max_epochs=abc"], "trainer.max_epochs", marks=pytest.mark.slow),  # a type: SETTINGS_CASES
    pytest.param(None, ["callbacks.checkpoint.monitor=val/loss"], "a resumed run keeps what", marks=pytest.mark.slow),
    pytest.param(truncate_last, [], "last.ckpt: not a whole checkpoint", marks=pytest.mark.slow),  # truncated-best: default
    (truncate_best, [], "best.ckpt: not a whole checkpoint"),
    pytest.param(foreign_last, [], "not a cnnexp checkpoint", marks=pytest.mark.slow),  # the default: test_run_records
    (corrupt_config, [], "config.yaml: not readable YAML"),
], ids=["group-override", "network-change", "bad-type", "monitor-change", "truncated-ckpt", "truncated-best",
        "foreign-ckpt", "corrupt-config"])
def test_failed_resume_leaves_the_run_byte_for_byte(finished_copy, spoil, extra, words):
    if spoil:
        spoil(finished_copy)
    before = snapshot(finished_copy)
    proc = cli("train", f"resume={finished_copy}", *extra)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert words in one_error_line(proc)
    assert snapshot(finished_copy) == before


def test_a_locked_run_folder_is_refused(finished_copy):
    from cnnexp.core.locks import FolderLock

    before = snapshot(finished_copy)
    held = FolderLock(finished_copy)  # as a running resume holds it
    try:
        proc = cli("train", f"resume={finished_copy}", "trainer.max_epochs=3")
    finally:
        del held
    assert proc.returncode == 2 and "another cnnexp process" in one_error_line(proc)
    assert snapshot(finished_copy) == before


def test_a_folder_without_test_images_is_refused_before_training(tmp_path, shared_data):
    """data=folder with data.test_fraction=0 and no test/ folder: the test after fit would have
    nothing to test (an IndexError once training had ended); refused first, unless no test is asked."""
    from cnnexp.config.compose import compose_config
    from cnnexp.core.errors import UserError
    from cnnexp.config.settings import load
    from tests.folder_data import tinted_digits

    root = tinted_digits(tmp_path / "images", shared_data, per_class=6, classes=2)
    args = ["data=folder", f"data.root={root}", "data.test_fraction=0", "data.batch_size=4"]
    with pytest.raises(UserError) as raised:
        load(compose_config(args))
    assert "data.test_fraction" in str(raised.value) and "test_after_fit=false" in str(raised.value)
    assert load(compose_config([*args, "test_after_fit=false"])).data.classes == ["0_red", "1_green"]


def test_a_slurm_sweep_without_a_controller_is_one_line_and_no_folder(tmp_path):
    """hydra/launcher=slurm where no controller answers (a slurm.conf naming a dead one; or no
    SLURM at all): refused before the sweep folder and its job files exist (was sbatch's traceback)."""
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=dead\nSlurmctldHost=nowhere(127.0.0.1)\nSlurmctldPort=9\nAuthType=auth/none\n"
                    "NodeName=nowhere CPUs=1\nPartitionName=debug Nodes=ALL Default=YES State=UP\n")
    out = tmp_path / "outputs"
    proc = cli("train", "-m", "hydra/launcher=slurm", "model.pool=max,avg", *SHORT, f"paths.output_dir={out}",
               env={"SLURM_CONF": str(conf)})
    assert proc.returncode == 2 and "hydra/launcher" in one_error_line(proc)
    assert not out.exists() or not any(out.rglob("*")), "no sweep folder, no job files"


def test_a_sweep_runs_folder_is_read_whole_as_resume(tmp_path):
    """A sweep names its runs' folders by their settings (`kernel_size=3,seed=1`): their `=` and `,`
    are the folder's, not a second key or a sweep, without the user quoting them for Hydra."""
    from cnnexp.config.compose import quote_folders

    folder = tmp_path / "sweep" / "kernel_size=3,seed=1"
    assert quote_folders([f"resume={folder}", "model.kernel_size=3,5"]) == [f"resume='{folder}'", "model.kernel_size=3,5"]
    assert quote_folders(["resume='a=b'", "resume=outputs/2026-11-25/10-31-02"]) == ["resume='a=b'", "resume=outputs/2026-11-25/10-31-02"]
    assert quote_folders(["resume=/x/it's a=b"]) == ["resume='/x/it\\'s a=b'"]
    folder.mkdir(parents=True)
    proc = cli("train", f"resume={folder}", "trainer.max_epochs=3")
    line = one_error_line(proc)
    assert proc.returncode == 2 and f"resume={folder}: not a run folder" in line, line
