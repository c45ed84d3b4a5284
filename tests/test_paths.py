"""Paths as typed, empty paths refused, and writes the disk refuses (issue #37): the fault matrix.

A folder the user names reaches the product exactly as typed — ` #`, `: `, quotes, `$`, a newline,
spaces, letters outside ASCII — or is refused in one line; an empty one is refused before any folder
is made; a write the system refuses (read-only, full, over `ulimit -f`, a file where a folder goes)
is one `cnnexp: error:` line that leaves no part of the file behind.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import PROJECT, SHARED_DATA, cli, run_env, tmpfs
from tests.test_bad_input import one_error_line

HOSTILE = ["hh #x/run", "a: b", "it's", 'say "hi"', "$HOME/x", "${oc.env:HOME}", "line\nbreak", " spaced out ",
           "Über/ß", "c:\\x\\", "a=b,c=d", "[1,2]", "{a: 1}", "null", "true", "1e3", "#", "~user"]
EMPTY = ["", "   "]


# ------------------------------------------------------------------ the small entry points' parser
@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_a_text_argument_is_taken_as_typed(value):
    from cnnexp.config.args import parse
    from cnnexp.eval import EvalArgs
    from cnnexp.export import ExportArgs
    from cnnexp.predict import PredictArgs

    args = parse(EvalArgs, [f"run={value}", f"data.root={value}", "json=true"])
    assert (args.run, args.data.root, args.json) == (value, value, True)
    assert parse(ExportArgs, [f"out={value}", "images=3"]).out == value
    assert parse(PredictArgs, [f"images={value}", f"model={value}"]).images == value


@pytest.mark.parametrize("key", ["run", "ckpt", "data.root", "split"])
@pytest.mark.parametrize("value", EMPTY, ids=["empty", "blank"])
def test_an_empty_text_argument_is_refused(key, value):
    from cnnexp.config.args import parse
    from cnnexp.core.errors import SettingsError
    from cnnexp.eval import EvalArgs

    with pytest.raises(SettingsError, match=rf"^{key}='\s*' is not valid: an empty value names no folder"):
        parse(EvalArgs, [f"{key}={value}"])


def test_eval_of_a_folder_named_with_a_comment_is_that_folder(tmp_path):
    """`run=DIR/hh #x/run` evaluated DIR/hh: YAML read ` #x/run` as a comment."""
    from cnnexp.config.args import parse
    from cnnexp.core.errors import RunError
    from cnnexp.eval import EvalArgs
    from cnnexp.records.folder import choose_checkpoint

    def fake_run(folder: Path) -> Path:
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "config.yaml").write_text("seed: 1\n")
        (folder / "checkpoints" / "best.ckpt").write_bytes(b"")
        return folder / "checkpoints" / "best.ckpt"

    fake_run(tmp_path / "hh")
    args = parse(EvalArgs, [f"run={tmp_path}/hh #x/run"])
    with pytest.raises(RunError, match="no such folder"):
        choose_checkpoint(args.run, args.ckpt)
    own = fake_run(tmp_path / "hh #x" / "run")
    assert choose_checkpoint(args.run, args.ckpt) == own
    newline = fake_run(tmp_path / "a\nb")  # a folder whose name holds a newline: found
    assert choose_checkpoint(parse(EvalArgs, [f"run={tmp_path}/a\nb"]).run, None) == newline


# ------------------------------------------------------------------ train's folders through Hydra
@pytest.mark.parametrize("key", ["data.root", "paths.output_dir", "resume", "hydra.run.dir", "hydra.sweep.dir"])
def test_a_folder_override_reaches_hydra_as_typed(key):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from cnnexp.config.compose import check_override_keys, quote_folders

    parser = OverridesParser.create()
    for value in [v for v in HOSTILE if v not in ("null", "~user")] + ["~/datasets"]:
        argv = quote_folders([f"{key}={value}"])
        check_override_keys(argv)
        want = str(Path.home() / "datasets") if value == "~/datasets" else value  # `~`: as the shell reads it
        assert parser.parse_override(argv[0]).value() == want, (key, value, argv)
    assert quote_folders(quote_folders([f"{key}=c:\\x\\ y"])) == quote_folders([f"{key}=c:\\x\\ y"])  # idempotent
    assert quote_folders([f"{key}=choice(a,b)", f"{key}=null"]) == [f"{key}=choice(a,b)", f"{key}=null"]


def test_composed_settings_hold_the_folders_as_typed():
    from cnnexp.config.compose import compose_config

    cfg = compose_config(["data.root=/d/hh #x/run", "paths.output_dir=/w/a: b\nÜber", "resume=${oc.env:HOME}/r,1"])
    assert (cfg.data.root, cfg.paths.output_dir, cfg.resume) == ("/d/hh #x/run", "/w/a: b\nÜber", f"{Path.home()}/r,1")


@pytest.mark.parametrize("key", ["paths.output_dir", "hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir",
                                 "data.root", "resume", "paths.data_dir"])
@pytest.mark.parametrize("value", ["", "''", "   ", "' '", "/ok,''"], ids=["bare", "quoted", "blank", "quoted-blank",
                                                                            "in-a-sweep"])
def test_an_empty_folder_is_refused_before_hydra(key, value):
    from cnnexp.config.compose import check_override_keys, quote_folders
    from cnnexp.core.errors import SettingsError

    argv = quote_folders([f"{key}={value}"]) if value != "/ok,''" else [f"{key}=choice(/ok,'')"]
    with pytest.raises(SettingsError, match=rf"^{key}='\s*' is not valid: an empty value names no folder"):
        check_override_keys(argv)


@pytest.mark.parametrize("key", ["paths.output_dir", "data.root", "resume"])
def test_an_empty_folder_from_a_record_is_refused_by_the_settings_check(key):
    """A recipe, a recorded config.yaml or an interpolation that ends empty: the settings check."""
    from omegaconf import OmegaConf

    from cnnexp.config.compose import compose_config, user_config
    from cnnexp.config.settings import load
    from cnnexp.core.errors import SettingsError

    cfg = user_config(compose_config([f"data.root={SHARED_DATA}"]))
    OmegaConf.update(cfg, key, " ")
    with pytest.raises(SettingsError, match=rf"^{key}=' ' is not valid"):
        load(cfg)


def test_train_with_an_empty_output_dir_makes_no_folder_anywhere(tmp_path, calibrated):
    before = set(Path("/").iterdir())
    proc = cli("train", f"data.root={SHARED_DATA}", "paths.output_dir=", "hydra.run.dir=''", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "paths.output_dir='' is not valid" in one_error_line(proc)
    assert not any(tmp_path.iterdir()) and set(Path("/").iterdir()) == before


# ------------------------------------------------------------------ writes the system refuses
def test_the_writer_names_the_file_and_leaves_nothing(tmp_path):
    from cnnexp.core.errors import UserError
    from cnnexp.core.files import WriteError, write_atomic

    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-folder").mkdir()
    cases = [(tmp_path / "a-file" / "sub" / "out.json", "a part of this path is a file"),     # ENOTDIR
             (tmp_path / "a-folder", "it is a folder, not a file"),                            # EISDIR
             (Path("/dev/null"), "a pipe, a socket or a device")]                               # not replaced
    for path, words in cases:
        with pytest.raises(WriteError) as caught:
            write_atomic(path, b"data")
        assert isinstance(caught.value, UserError) and isinstance(caught.value, OSError)
        assert words in str(caught.value) and "\n" not in str(caught.value)
    assert Path("/dev/null").is_char_device()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a-file", "a-folder"], "no .part left"


@pytest.fixture
def read_only_disk(tmp_path):
    """A small tmpfs mounted read-only (the tests run as root: chmod would not stop a write)."""
    with tmpfs(tmp_path / "ro", "size=4m,ro") as mount:
        yield mount


def test_a_read_only_disk_is_one_write_error(read_only_disk):
    from cnnexp.core.files import WriteError, write_atomic

    with pytest.raises(WriteError, match=rf"^{read_only_disk}/x.json: Read-only file system; the file system is "
                                         r"read-only; pick a folder you can write to \(paths.output_dir=…\)$"):
        write_atomic(read_only_disk / "x.json", "{}")


def file_size_limit(limit: int):
    """A child's RLIMIT_FSIZE: Python ignores SIGXFSZ, so a write past it fails with EFBIG."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_pictures_over_a_file_size_limit_are_one_line_and_no_part(tmp_path):
    folder = tmp_path / "pictures"
    proc = subprocess.run([sys.executable, "-m", "cnnexp.shapes", f"data.root={SHARED_DATA}", f"draw={folder}"],
                          cwd=PROJECT, capture_output=True, text=True, timeout=300, env=run_env({"XDG_CACHE_HOME": str(tmp_path)}),
                          preexec_fn=file_size_limit(20_000))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "File too large; the file is larger than this process may write (ulimit -f)" in one_error_line(proc)
    assert not list(folder.glob(".*.part")), "no part of a picture left"


@pytest.mark.slow
def test_export_where_the_disk_refuses_is_one_line_and_out_writes_elsewhere(quick_run, tmp_path, read_only_disk):
    run_dir = tmp_path / "run #1: ü"
    shutil.copytree(quick_run[0], run_dir)
    proc = subprocess.run([sys.executable, "-m", "cnnexp.export", f"run={run_dir}", "images=32"], cwd=PROJECT,
                          capture_output=True, text=True, timeout=300, env=run_env(), preexec_fn=file_size_limit(50_000))
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = one_error_line(proc)
    assert f"{run_dir}/model.onnx: File too large" in line and "(out=…)" in line
    assert not (run_dir / "model.onnx").exists() and not list(run_dir.glob(".*.part"))
    proc = cli("export", f"run={run_dir}", "images=32", f"out={read_only_disk}/")
    assert proc.returncode == 2 and "read-only; pick a folder you can write to (out=…)" in one_error_line(proc)
    proc = cli("export", f"run={run_dir}", "images=32", f"out={tmp_path / 'elsewhere'}/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "elsewhere" / "model.onnx").is_file() and not (run_dir / "model.onnx").exists()


def test_a_new_run_on_a_full_disk_is_one_line_and_no_folder(tmp_path, calibrated):
    """A full disk still makes folders: Hydra then failed writing .hydra/config.yaml (a traceback,
    exit 1, a half folder). The folder check writes a small file too."""
    with tmpfs(tmp_path / "full", "size=1m") as mount:
        with (mount / "filler").open("wb") as f:
            with pytest.raises(OSError):
                while True:
                    f.write(bytes(2**16))
                    f.flush()
        proc = cli("train", f"data.root={SHARED_DATA}", f"paths.output_dir={mount / 'out'}")
        assert proc.returncode == 2 and "No space left on device" in one_error_line(proc)
        assert [p.name for p in mount.iterdir()] == ["filler"]


def test_a_pipe_among_images_and_a_port_out_of_range_are_one_line(tmp_path, capsys):
    """A reader never opens a pipe (it would hang); a port bind() cannot take is named before it."""
    import os

    from cnnexp import dashboard
    from cnnexp.core.errors import RunError
    from cnnexp.predict import find_images

    os.mkfifo(tmp_path / "f.png")
    with pytest.raises(RunError, match="f.png is not a plain file"):
        find_images(str(tmp_path))
    with pytest.raises(SystemExit) as stop:
        dashboard.main([str(tmp_path), "port=-1"])
    assert stop.value.code == 2 and "port=-1 is not valid" in capsys.readouterr().err


def test_a_stop_in_a_reading_command_is_one_line_and_the_signals_code(capsys):
    """core.stopping.run_command: Ctrl-C (a KeyboardInterrupt), or Lightning's own exit 1 once a
    signal came (what eval's test loop does), is one line and 130; an OSError nobody named is one line."""
    import signal

    from cnnexp.core import stopping

    def interrupted():
        raise KeyboardInterrupt

    def lightning_exit():
        stopping.received = signal.SIGINT
        raise SystemExit(1)

    def too_long():
        raise OSError(36, "File name too long", "/tmp/" + "é" * 150)

    try:
        for main, code, words in [(interrupted, 130, "interrupted; nothing was written"),
                                  (lightning_exit, 130, "interrupted (received SIGINT); nothing was written"),
                                  (too_long, 2, "File name too long; a name in this path is too long")]:
            with pytest.raises(SystemExit) as stop:
                stopping.run_command(main)
            err = capsys.readouterr().err
            assert stop.value.code == code and len(err.splitlines()) == 1 and words in err, err
    finally:
        stopping.received = None
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_a_url_where_a_folder_goes_and_a_key_given_twice_are_one_line(tmp_path):
    """hydra.run.dir=s3://b/x became the local folder ./s3:/b/x, data.root=https://… a download into
    ./https:/…; `eval run=A run=B` evaluated B without a word; a file named with `[1]` is that file."""
    from cnnexp.config import args as cli_args
    from cnnexp.config.compose import check_override_keys
    from cnnexp.core.errors import SettingsError
    from cnnexp.eval import EvalArgs
    from cnnexp.predict import find_images

    for override in ("hydra.run.dir=s3://bucket/x", "data.root=https://example.com/mnist"):
        with pytest.raises(SettingsError, match="a folder on this machine, not a URL"):
            check_override_keys([override])
    with pytest.raises(SettingsError, match="given 2 times"):
        cli_args.parse(EvalArgs, ["run=/a", "run=/b"])
    odd = tmp_path / "im[1]" / "a.png"
    odd.parent.mkdir()
    odd.write_bytes(b"")
    assert find_images(str(odd)) == [odd]
