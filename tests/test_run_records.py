"""A run folder handed over is data (docs/records.md): `cnnexp.check` says one line for each thing
in it that is not as a record promises and exits 1 — only what is alive is a note — and a resume
checks every record it relies on before it writes anything, each refusal one line with the folder
left byte for byte. The fault matrix: each case a folder copied from the session's quick_run and
changed by hand, as a hostile or careless user would; no training."""

from __future__ import annotations

import json
import re
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import cli

# (case, how the copy is changed, a fragment of its one finding)
def _write(name: str, text: str):
    return lambda run: (run / name).write_text(text)


def _link(name: str, target: str):
    def change(run: Path) -> None:
        (run / name).unlink()
        (run / name).symlink_to(target)
    return change


def _folder(name: str):
    def change(run: Path) -> None:
        (run / name).unlink()
        (run / name).mkdir()
    return change


def _fifo(name: str):
    def change(run: Path) -> None:
        (run / name).unlink()
        os.mkfifo(run / name)
    return change


def _huge(name: str):
    def change(run: Path) -> None:
        with (run / name).open("r+b") as f:
            f.truncate(40 * 2**20)  # sparse: 40 MB that take no disk
    return change


def _record(**changes):
    def change(run: Path) -> None:
        record = json.loads((run / "results.json").read_text())
        (run / "results.json").write_text(json.dumps({**record, **changes}))
    return change


def _config_line(old: str, new: str):
    def change(run: Path) -> None:
        text = (run / "config.yaml").read_text()
        assert old in text
        (run / "config.yaml").write_text(text.replace(old, new, 1))
    return change


def _cut(name: str, keep: int):
    return lambda run: (run / name).write_bytes((run / name).read_bytes()[:keep])


def _cut_lines(name: str, keep: int):
    """Cut short at a line's end, as a write cut by a full disk leaves YAML that still parses."""
    return lambda run: (run / name).write_text("".join((run / name).read_text().splitlines(True)[:keep]))


def _data_elsewhere(run: Path) -> None:
    """config.yaml edited to name a data folder elsewhere that holds no MNIST (a resume would download there)."""
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(re.sub(r"(?m)^(  root: ).*$", r"\g<1>/tmp/cnnexp-no-such-data-folder", text, count=1))


def _stale_part(run: Path) -> None:
    (run / "checkpoints" / ".last.ckpt.x1y2.part").write_bytes(b"PK\x03\x04 cut short")


def _unsafe(run: Path) -> None:
    import torch

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    torch.save({"state_dict": {}, "hyper_parameters": {"run_config": {}}, "x": Payload()},
               run / "checkpoints" / "best.ckpt")


CHECK_CASES = {
    "a stale .part": (_stale_part, "unfinished temporary file"),
    "best.ckpt a link to /dev/zero": (_link("checkpoints/best.ckpt", "/dev/zero"), "outside"),
    "best.ckpt a folder": (_folder("checkpoints/best.ckpt"), "a folder where a file belongs"),
    "best.ckpt unsafe": (_unsafe, "refused — it holds pickled code"),
    "best.ckpt cut short": (_cut("checkpoints/best.ckpt", 5000), "not a whole checkpoint"),
    "config.yaml empty": (_write("config.yaml", ""), "empty"),
    "config.yaml a list": (_write("config.yaml", "- a\n- b\n"), "not a mapping"),
    "config.yaml a link out": (_link("config.yaml", "/etc/passwd"), "outside"),
    "config.yaml cut short": (_cut_lines("config.yaml", 12), "does not hold a run's settings"),
    "config.yaml lr: fast": (_config_line("  lr: 0.001", "  lr: fast"), "optimizer.lr='fast'"),
    "config.yaml a pipe": (_fifo("config.yaml"), "not a plain file"),
    "results.json a list": (_write("results.json", "[1, 2]"), "a JSON list"),
    "results.json odd types": (_record(seconds="long"), "seconds is \"long\", not a number"),
    "results.json huge": (_huge("results.json"), "MB, far more than a record holds"),
    "results.json a pipe": (_fifo("results.json"), "not a plain file"),
    "metrics.csv garbage": (_write("metrics.csv", "epoch,step\nx,1\n"), "not a table of epochs"),
    "a dead run": (_record(status="running"), ": dead —"),
    "results.json best_val_acc NaN": (_record(best_val_acc=float("nan")), "best_val_acc is nan"),
    "results.json test_acc 7.5": (_record(test_acc=7.5), "outside what it can be"),
    "metrics.csv emptied": (_write("metrics.csv", "epoch,step\n"), "epochs, but results.json (ok) says"),
    "train.log a link out": (_link("train.log", "/etc/hostname"), "a resume would write through it"),
    "train.log a hard link": (lambda run: os.link(run / "config.yaml", run / "hard.log") or
                              (run / "train.log").unlink() or os.rename(run / "hard.log", run / "train.log"),
                              "a hard link, the same file as one elsewhere"),
    "config.yaml aliases (billion laughs)": (_write("config.yaml", "a: &a [x, x]\n" + "".join(
        f"{n}: &{n} [*{p}, *{p}, *{p}]\n" for p, n in zip("abcdefg", "bcdefgh"))), "holds a YAML alias"),
    "results.json nested past any record": (_write("results.json", "[" * 100_000 + "]" * 100_000), "not readable JSON"),
}


@pytest.fixture
def copy_run(quick_run, tmp_path):
    """A fresh copy of the session's finished run, for each case to change."""
    def copy(name: str = "run") -> Path:
        run = tmp_path / name
        shutil.copytree(quick_run[0], run, symlinks=True)
        return run
    return copy


def test_each_broken_record_is_one_finding(copy_run):
    """In process (no torch for the plain checkpoints): each case's findings name its file, and the
    finished run it was copied from has none."""
    from cnnexp.check import folder_findings

    assert folder_findings(copy_run("sound")) == ([], [])
    missed = {}
    for case, (change, fragment) in CHECK_CASES.items():
        run = copy_run(case.replace(" ", "_").replace("/", "_"))
        change(run)
        findings, notes = folder_findings(run)
        if not any(fragment in f for f in findings):
            missed[case] = findings
    assert not missed, missed


def test_the_exit_code_follows_the_findings(copy_run):
    """`ok` and exit 0 only with no finding; a finding is a line and exit 1, never followed by `ok`."""
    sound = cli("check", str(copy_run("sound")))
    assert sound.returncode == 0 and sound.stdout.strip().endswith("its records keep the promises of docs/records.md")
    broken = copy_run("broken")
    _stale_part(broken)
    _link("checkpoints/best.ckpt", "/dev/zero")(broken)
    proc = cli("check", str(broken), timeout=60)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 1 and "ok —" not in proc.stdout and "Traceback" not in proc.stderr, proc
    assert len(lines) == 2 and any("/dev/zero" in line for line in lines), lines


def test_a_sweep_refuses_an_empty_record_and_a_run_linked_in(copy_run, tmp_path):
    from cnnexp.check import folder_findings

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("")
    shutil.move(str(copy_run("elsewhere")), tmp_path / "elsewhere")
    (sweep / "lr=1").symlink_to(tmp_path / "elsewhere")
    findings, _ = folder_findings(sweep)
    assert any("multirun.yaml: empty" in f for f in findings) and any("a link" in f for f in findings), findings


RESUME_CASES = {
    "metrics.csv garbage": (_write("metrics.csv", "epoch,step\nx,1\n"), "metrics.csv: not a table of epochs"),
    "metrics.csv an epoch twice": (_write("metrics.csv", "epoch,step\n0,1\n0,2\n"), "not each epoch once"),
    "metrics.csv emptied": (_write("metrics.csv", "epoch,step\n"), "epochs, but results.json says"),
    "results.json a list": (_write("results.json", "[1, 2]"), "results.json: not a run record"),
    "results.json odd types": (_record(seconds="long", extends=[1]), "results.json: extends is not the record it extended"),
    "config.yaml cut short": (_cut_lines("config.yaml", 12), "config.yaml: does not hold a run's settings"),
    "config.yaml a link out": (_link("config.yaml", "/etc/passwd"), "config.yaml: a link to /etc/passwd"),
    "config.yaml data.root elsewhere": (_data_elsewhere, "records data.root=/tmp/cnnexp-no-such-data-folder"),
    "train.log a link out": (_link("train.log", "/etc/hostname"), "train.log: a link to /etc/hostname"),
    "last.ckpt a folder": (_folder("checkpoints/last.ckpt"), "last.ckpt: a folder"),
    "best.ckpt unsafe": (_unsafe, "best.ckpt: refused — it holds pickled code"),
    "checkpoints a link out": (None, "outside"),
}


def test_a_resume_checks_every_record_before_it_writes(copy_run, tmp_path):
    """`prepare`, the whole check a resume passes before its first write: each case one line that
    names the file, and the folder byte for byte as it was (no lock file left either)."""
    from cnnexp.core.errors import UserError
    from cnnexp.run.resume import prepare

    wrong = {}
    for case, (change, fragment) in RESUME_CASES.items():
        run = copy_run(case.replace(" ", "_"))
        if change is None:  # checkpoints/ itself a link to a folder elsewhere: a resume would write there
            shutil.move(str(run / "checkpoints"), tmp_path / f"ckpts-{run.name}")
            (run / "checkpoints").symlink_to(tmp_path / f"ckpts-{run.name}")
        else:
            change(run)
        before = {p: p.read_bytes() if p.is_file() and not p.is_symlink() else os.readlink(p) if p.is_symlink()
                  else None for p in run.rglob("*")}
        try:
            prepare(str(run), ["trainer.max_epochs=3"])
            wrong[case] = "accepted"
        except UserError as e:
            if fragment not in str(e) or "\n" in str(e) or "root:x:0" in str(e):
                wrong[case] = str(e)
        after = {p: p.read_bytes() if p.is_file() and not p.is_symlink() else os.readlink(p) if p.is_symlink()
                 else None for p in run.rglob("*")}
        if after != before:
            wrong[case] = f"changed: {set(after) ^ set(before)}"
    assert not wrong, wrong
    assert not Path("pwned").exists()


@pytest.mark.slow  # default run: the same check in process (test_a_resume_checks_every_record_before_it_writes)
def test_a_resume_of_a_garbled_record_is_one_line_and_changes_nothing(copy_run):
    """The issue's case end to end: an ok run whose metrics.csv is garbage used to train an epoch,
    die on int() and turn its `ok` record into `failed`."""
    run = copy_run()
    _write("metrics.csv", "epoch,step\nx,1\n")(run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    proc = cli("train", f"resume={run}", "trainer.max_epochs=3")
    lines = [line for line in proc.stderr.splitlines() if line.startswith("cnnexp:")]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "metrics.csv: not a table of epochs" in lines[0]
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_an_unsafe_checkpoint_is_refused_in_our_words(copy_run):
    """Never torch's advice to load it with weights_only=False: what it is, and that it is refused."""
    from cnnexp.core.errors import RunError
    from cnnexp.run.restore import load_checkpoint, load_task

    run = copy_run()
    _unsafe(run)
    for opening in (lambda: load_checkpoint(run / "checkpoints" / "best.ckpt"), lambda: load_task(str(run), None)):
        with pytest.raises(RunError) as refused:
            opening()
        line = str(refused.value)
        assert "refused" in line and "posix.system" in line and "weights_only" not in line and "\n" not in line
    assert not Path("pwned").exists()


def test_a_run_named_by_eval_is_read_only_from_its_own_folder(copy_run):
    """run= for eval, predict and export (through records/): a checkpoint that is a link out of the
    run, or a device, is refused before torch opens it."""
    from cnnexp.core.errors import RunError
    from cnnexp.records.folder import choose_checkpoint

    run = copy_run()
    _link("checkpoints/best.ckpt", "/dev/zero")(run)
    with pytest.raises(RunError, match="outside"):
        choose_checkpoint(str(run), None)
    with pytest.raises(RunError, match="not a plain file"):
        choose_checkpoint(None, "/dev/zero")


def test_a_lock_file_that_is_a_link_is_never_written_through(tmp_path):
    from cnnexp.core.errors import RunError
    from cnnexp.core.locks import FolderLock, holder

    victim = tmp_path / "victim"
    victim.write_text("precious")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".cnnexp.lock").symlink_to(victim)
    with pytest.raises(RunError, match="a link"):
        FolderLock(folder)
    assert victim.read_text() == "precious" and holder(folder) is None
    (folder / ".cnnexp.lock").unlink()
    os.mkfifo(folder / ".cnnexp.lock")
    assert holder(folder) is None  # never blocked on a pipe


def test_two_runs_into_one_folder_the_loser_is_one_line(tmp_path):
    """The lock is taken before Hydra writes into a single run's folder: the second is refused
    there, in the words of hydra.run.dir, and nothing of it reaches the folder."""
    from omegaconf import OmegaConf

    from cnnexp.core.errors import SettingsError
    from cnnexp.core.locks import FolderLock
    from cnnexp.run.lifecycle import HELD, hold_run_folder

    folder = tmp_path / "same"
    config = OmegaConf.create({"hydra": {"run": {"dir": str(folder)}}})
    winner = FolderLock(folder) if folder.mkdir() is None else None
    try:
        with pytest.raises(SettingsError, match="hydra.run.dir=.*another cnnexp process.*name another folder"):
            hold_run_folder(config)
    finally:
        winner.release()
    hold_run_folder(config)
    HELD.pop(str(folder)).release()
    assert list(folder.iterdir()) == []


def test_a_run_stopped_while_it_starts_leaves_no_folder_but_never_a_users_file(tmp_path):
    from cnnexp.run.outcome import drop_fresh_folder

    fresh = tmp_path / "fresh"
    (fresh / ".hydra").mkdir(parents=True)
    (fresh / "train.log").write_text("")
    drop_fresh_folder(fresh)
    assert not fresh.exists()
    named = tmp_path / "named"
    (named / ".hydra").mkdir(parents=True)
    (named / "notes.txt").write_text("mine")
    drop_fresh_folder(named)
    assert (named / "notes.txt").read_text() == "mine"


def test_the_checkers_plain_checkpoint_names_are_what_torch_allows():
    """check.py opens a checkpoint without torch only where it holds these: each is one torch's
    weights-only loader accepts, so check and eval agree."""
    from torch._weights_only_unpickler import _get_allowed_globals

    from cnnexp.check import WEIGHTS_GLOBALS

    allowed = set(_get_allowed_globals())
    assert {name.replace(" ", ".") for name in WEIGHTS_GLOBALS} <= allowed


def test_bare_folder_arguments_and_printed_commands(quick_run, tmp_path, capsys):
    """An empty folder argument is one line in every command that takes one bare; a command printed
    for pasting names a folder with a space, '#' and ':' as one shell word."""
    import shlex

    from cnnexp import check, compare, dashboard, summary
    from cnnexp.run.outcome import what_resume_does

    for main in (check.main, summary.main, compare.main, dashboard.main):
        with pytest.raises(SystemExit) as stop:
            main(["", "x"] if main is compare.main else [""])
        assert stop.value.code == 2 and "an empty value names no folder" in capsys.readouterr().err
    odd = tmp_path / "my runs #2" / "killed: a"
    shutil.copytree(quick_run[0], odd)
    said = what_resume_does(odd)
    assert shlex.split(said.split("trained again by: ", 1)[1])[-1] == f"resume={odd}"
