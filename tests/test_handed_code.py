"""A folder someone hands you never runs code, never steers git, never gets written: a model=own
record's class is imported only on the user's word (never by check/compare/summary/dashboard), a
provenance.json's values reach no argv unchecked, reproduce writes nowhere inside RUN, and a run
folder named with `..` is one folder (its lock)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from cnnexp.reproduce import main as reproduce_main
from tests.helpers import QUICK, cli, in_process

TRAP = "open({marker!r}, 'w').write('ran')\nimport torch\nclass Net(torch.nn.Module):\n    pass\n"


def _trap(folder: Path, marker: Path, name: str = "trapmod") -> str:
    """A module whose import leaves `marker`: what a handed folder must never get run."""
    (folder / f"{name}.py").write_text(TRAP.format(marker=str(marker)))
    return f"{name}.Net"


# ------------------------------------------------------------------ the rule itself, torch-free
@pytest.fixture
def own():
    """config.own_network, whose marks (folders read, classes typed) are cleared after the test, as a
    process's are when it ends."""
    from cnnexp.config import own_network

    yield own_network
    own_network.reset()


def test_a_records_class_is_imported_only_when_typed(own, tmp_path, monkeypatch):
    from cnnexp.core.errors import UserError

    marker = tmp_path / "ran"
    target = _trap(tmp_path, marker)
    monkeypatch.syspath_prepend(str(tmp_path))
    settings = own.OwnModelSettings("own", "classification", target, [1, 28, 28], 10)
    own.reading_record(tmp_path / "run")
    monkeypatch.setattr(sys, "argv", ["cnnexp.eval", "run=x"])
    with pytest.raises(UserError, match=f"add model._target_={target} to the command"):
        own.network_class(settings)
    own.typed("other.Net")
    with pytest.raises(UserError, match="not the other.Net you named"):
        own.network_class(settings)
    own.never_import()
    own.typed(target)
    with pytest.raises(UserError, match="read-only command never imports"):
        own.network_class(settings)
    assert not marker.exists() and "trapmod" not in sys.modules


def test_the_handed_folder_and_a_cwd_inside_it_are_off_sys_path(own, tmp_path, monkeypatch):
    from cnnexp.core.errors import UserError

    run = tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "ran"
    target = _trap(run, marker, "insidemod")
    monkeypatch.chdir(run)
    monkeypatch.syspath_prepend("")  # what `python -m` puts first
    monkeypatch.syspath_prepend(str(run))  # PYTHONPATH=. from inside it
    own.reading_record(run)
    own.typed(target)  # even typed: not from the folder it came in
    settings = own.OwnModelSettings("own", "classification", target, [1, 28, 28], 10)
    with pytest.raises(UserError, match="cannot import insidemod"):
        own.network_class(settings)
    assert not marker.exists() and "" in sys.path and str(run) in sys.path


def test_a_module_beside_a_sweeps_runs_is_off_sys_path_too(own, tmp_path, monkeypatch):
    """cd into a handed sweep and name your own class: a module of that name beside its runs is not it."""
    from cnnexp.core.errors import UserError
    from cnnexp.records.folder import SWEEP_CONFIG

    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    (sweep / SWEEP_CONFIG).write_text("hydra: {}\n")
    marker = tmp_path / "ran"
    target = _trap(sweep, marker, "besidemod")
    monkeypatch.chdir(sweep)
    monkeypatch.syspath_prepend("")
    own.reading_record(sweep / "0")
    own.typed(target)
    settings = own.OwnModelSettings("own", "classification", target, [1, 28, 28], 10)
    with pytest.raises(UserError, match="cannot import besidemod"):
        own.network_class(settings)
    assert not marker.exists()


# ------------------------------------------------------------------ provenance.json's values, read once
@pytest.mark.parametrize("edit, says", [
    ({"code": {"commit": "--output=VICTIM"}}, "code.commit is '--output="),
    ({"code": {"commit": "--remote=ssh://127.0.0.1:2222/x"}}, "not a commit (7 to 40 hex digits)"),
    ({"code": {"commit": 123456789}}, "code.commit is 123456789"),
    ({"code": {"commit": ["a", "b"]}}, "code.commit is ['a', 'b']"),
    ({"code": {"commit": "0" * 40, "branch": 5}}, "code.branch is 5, not text"),
    ({"overrides": [1, None]}, "overrides holds 1"),
    ({"overrides": "abc"}, "overrides is str 'abc', not a list"),
    ({"overrides": ["--config-dir=/tmp/evil", "experiment=evil"]}, "overrides holds '--config-dir"),
])
def test_a_handed_provenance_of_wrong_types_is_one_line_for_every_reader(quick_run, tmp_path, capsys, edit, says):
    from cnnexp.compare import main as compare_main

    run, _ = quick_run
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    bad = tmp_path / "bad"
    shutil.copytree(run, bad, ignore=shutil.ignore_patterns("checkpoints", "events*"))
    found = json.loads((bad / "provenance.json").read_text())
    found.update({k: v if k != "code" else {**v} for k, v in edit.items()})
    if "code" in edit and isinstance(found["code"].get("commit"), str):
        found["code"]["commit"] = found["code"]["commit"].replace("VICTIM", str(victim))
    (bad / "provenance.json").write_text(json.dumps(found))
    for main, args in ((reproduce_main, [bad, "code=recorded", "force=true", f"out={tmp_path / 'again'}"]),
                       (compare_main, [run, bad, f"out={tmp_path}"])):
        code, _, err = in_process(main, args, capsys)
        assert code == 2 and says in err and err.count("\n") == 1, err
    assert victim.read_text() == "precious" and not (tmp_path / "again").exists()


# ------------------------------------------------------------------ reproduce writes nowhere inside RUN
def test_reproduce_never_writes_inside_run_however_the_path_is_spelt(quick_run, tmp_path, capsys):
    run, _ = quick_run
    copy = tmp_path / "q"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("checkpoints", "events*"))
    (tmp_path / "link").symlink_to(copy)
    (tmp_path / "afile").write_text("x")
    homed = tmp_path / "homed"
    shutil.copytree(copy, homed)
    config = homed / "config.yaml"
    lines = config.read_text().splitlines()
    config.write_text("\n".join(line if not line.strip().startswith("output_dir:") else
                                f"  output_dir: {tmp_path / 'zz' / '..' / 'homed'}" for line in lines))
    before = sorted(p.name for p in copy.iterdir())
    cases = [([copy, f"out={tmp_path / 'o1' / '..' / 'q' / 'again'}"], "leads inside"),
             ([copy, f"out={tmp_path / 'link' / 'again'}"], "leads inside"),
             ([homed], "paths.output_dir="),
             ([copy, f"out={tmp_path / 'afile'}"], "a file"),
             ([copy, f"out={homed}"], "holds files already")]
    writers = tmp_path / "writers"  # recorded overrides that would write into the run itself
    shutil.copytree(copy, writers)
    found = json.loads((writers / "provenance.json").read_text())
    for override in (f"data.root={writers}", f"logger.mlflow.tracking_uri=sqlite:///{writers / 'evil.db'}"):
        (writers / "provenance.json").write_text(json.dumps({**found, "overrides": [*found["overrides"], override]}))
        cases.append(([writers, f"out={tmp_path / 'o-' / override[:4]}", "force=true"], "leads inside it"))
    for args, says in cases:
        code, _, err = in_process(reproduce_main, args, capsys)
        assert code == 2 and says in err and err.count("\n") == 1, (args, err)
    assert sorted(p.name for p in copy.iterdir()) == before and not (homed / "reproduced").exists()
    assert not (writers / "MNIST").exists() and not (writers / "evil.db").exists()
    (writers / "provenance.json").write_text(json.dumps({**found, "overrides": [  # verify pass NEW24
        *found["overrides"], "model=own", "+model={_target_:trapmod.Net}"]}))
    code, _, err = in_process(reproduce_main, [writers, f"out={tmp_path / 'o-own'}"], capsys)
    assert code == 2 and "names code to import" in err, err


def test_the_run_folders_lock_has_one_spelling(tmp_path):
    from cnnexp.run.lifecycle import held_key

    (tmp_path / "b").mkdir()
    (tmp_path / "l").symlink_to(tmp_path / "b")
    assert held_key(tmp_path / "a" / ".." / "b") == held_key(tmp_path / "l") == str((tmp_path / "b").resolve())


# ------------------------------------------------------------------ with real runs
OWN = ["model=own", "model._target_=tests.own_nets.TinyNet", "model.width=2"]
TINY = [*QUICK, "trainer.max_epochs=1", "trainer.limit_train_batches=3"]


@pytest.mark.slow
def test_a_handed_own_run_runs_none_of_its_code(tmp_path, calibrated):
    """check/compare import nothing; eval/export/resume/reproduce only what the user names again,
    and never from the run folder, even with the run folder as the current folder."""
    run = tmp_path / "own"
    proc = cli("train", *OWN, *TINY, f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    marker = tmp_path / "ran"
    target = _trap(run, marker, "evilmod")
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace("tests.own_nets.TinyNet", target))
    import torch

    for name in ("best", "last"):
        path = run / "checkpoints" / f"{name}.ckpt"
        ckpt = torch.load(path, weights_only=True)
        ckpt["hyper_parameters"]["run_config"]["model"]["_target_"] = target
        torch.save(ckpt, path)
    for command, says in ((["check", "."], None), (["eval", "run=."], f"add model._target_={target}"),
                          (["export", "run=."], f"add model._target_={target}"),
                          (["train", "resume=."], f"add model._target_={target}"),
                          (["eval", "run=.", f"model._target_={target}"], "cannot import evilmod")):
        proc = cli(*command, cwd=run)
        assert (says is None or says in proc.stderr) and not marker.exists(), (command, proc.stderr[-2000:])
    proc = cli("reproduce", str(run), f"out={tmp_path / 'again'}")  # config.yaml edited, provenance.json not
    assert proc.returncode == 2 and "name different network classes" in proc.stderr and not marker.exists()
    record = run / "provenance.json"
    record.write_text(record.read_text().replace("tests.own_nets.TinyNet", target))
    proc = cli("reproduce", str(run), f"out={tmp_path / 'again'}")
    assert proc.returncode == 2 and f"add model._target_={target}" in proc.stderr and not marker.exists()
    assert not (tmp_path / "again").exists()


@pytest.mark.slow
def test_a_run_folder_named_with_dotdot_is_trained(tmp_path, calibrated):
    (tmp_path / "d").mkdir()
    proc = cli("train", *TINY, "hydra.run.dir=../dotdot", cwd=tmp_path / "d")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "dotdot" / "results.json").read_text())["status"] == "ok"
