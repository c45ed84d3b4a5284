"""A search's study as a folder someone hands you holds it: opened only inside the sweep folder or
in a database the user names, read-only by summary, check and the dashboard (not a byte of the
folder changes), and every study.json / study.db / study.journal that is not ours or not readable
refused in one line — by every reader, without a traceback. The folders are made without
training: one real search whose only trial the shape check rejects, copied and spoiled by hand."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3

import optuna
import pytest

from cnnexp import check, dashboard, summary
from cnnexp.search import study as study_access
from cnnexp.search.study import StudyRefused, load_study, open_storage, study_problem
from tests.helpers import cli, sweep_dir

pytestmark = [pytest.mark.xdist_group("test_study_access"),  # its module fixture is built once, on one worker
              pytest.mark.usefixtures("calibrated", "nothing_named")]

NO_ROUTE = "postgresql://someone:hunter2@10.255.255.1/studies"   # never connected to: the test would hang
CLOSED_PORT = "postgresql://someone@127.0.0.1:1/studies"         # refuses at once, if it were tried


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    """A real search folder (multirun.yaml, study.json, study.db, one rejected trial), in seconds."""
    out = tmp_path_factory.mktemp("search")
    proc = cli("train", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=1", "hydra.sweeper.max_rejected=1",
               "model.kernel_size=choice(99)", f"paths.output_dir={out}")
    assert "1 rejected" in proc.stdout, proc.stderr[-2000:]
    return sweep_dir(out)


@pytest.fixture
def nothing_named(monkeypatch):
    """The databases a command names are per process: each test starts with none."""
    monkeypatch.setattr(study_access, "_named", set())


def files(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def other_optuna_db(path, name="someone-elses"):
    optuna.create_study(storage=f"sqlite:///{path}", study_name=name)


def spoil(folder, case, elsewhere):
    """The sweep folder `folder` as a hostile or careless hand leaves it; returns the file to name."""
    record, db = folder / "study.json", folder / "study.db"
    if case.startswith("record:"):
        record.write_text(case[len("record:"):].replace("ELSEWHERE", str(elsewhere)))
        return record
    if case == "db:empty":
        db.write_bytes(b"")
    elif case == "db:foreign":
        db.unlink()
        sqlite3.connect(db).executescript("create table notes(text); insert into notes values ('mine');")
    elif case == "db:garbage":
        db.write_bytes(b"SQLite format 3\0" + bytes(range(256)) * 8)
    elif case == "db:another study":
        db.unlink()
        other_optuna_db(db)
    elif case == "db:pipe":  # a reader that opened it would wait for a writer forever
        db.unlink()
        os.mkfifo(db)
    elif case == "db:link out":  # the study itself, moved out of the folder: a resume would write there
        db.rename(elsewhere)
        db.symlink_to(elsewhere)
    elif case.startswith("journal:"):
        record.write_text(json.dumps({"storage": "journal", "study_name": "cnnexp"}))
        (folder / "study.journal").write_bytes(case[len("journal:"):].encode())
        return folder / "study.journal"
    return db


WHAT = {  # case → what the one line says
    'record:{"storage": "sql': "not readable",
    "record:[1, 2]": "not a study record",
    "record:3": "not a study record",
    'record:{"where": "sqlite"}': "not a study record",
    'record:{"storage": "mysql", "study_name": "cnnexp"}': "not a study record",
    'record:{"storage": "sqlite", "study_name": ["cnnexp"]}': "not a study record",
    'record:{"storage": "sqlite:///ELSEWHERE", "study_name": "cnnexp"}': "not opened on a folder's word",
    f'record:{{"storage": "{NO_ROUTE}", "study_name": "cnnexp"}}': "not opened on a folder's word",
    "db:empty": "not an Optuna study (tables: none)",
    "db:foreign": "not an Optuna study (tables: notes)",
    "db:garbage": "not a readable SQLite database",
    "db:another study": "holds no study named 'cnnexp'",
    "db:link out": "outside the sweep folder",
    "db:pipe": "not a file",
    "journal:garbage\n{not json\n": "not a readable study",
    'journal:{"op_code": 0, "worker_id": "w", "study_name": "theirs", "directions": [1]}\n': "holds no study named",
}
LIKE_ANOTHER = {"record:3", 'record:{"where": "sqlite"}', 'record:{"storage": "mysql", "study_name": "cnnexp"}',
                'record:{"storage": "sqlite", "study_name": ["cnnexp"]}', "db:another study",
                'journal:{"op_code": 0, "worker_id": "w", "study_name": "theirs", "directions": [1]}\n'}
CASES = [pytest.param(case, marks=pytest.mark.slow) if case in LIKE_ANOTHER else case for case in WHAT]  # slow: a
# case of the same kind as one the default run keeps


@pytest.mark.parametrize("case", CASES)
def test_a_study_that_is_not_ours_is_refused_in_one_line_by_every_reader_and_nothing_changes(
        search, tmp_path, case, capsys):
    folder, elsewhere = tmp_path / "sweep", tmp_path / "elsewhere.db"
    shutil.copytree(search, folder, symlinks=True)
    named = spoil(folder, case, elsewhere)
    before, outside = files(folder), elsewhere.exists()
    with pytest.raises(StudyRefused, match=re.escape(WHAT[case])):
        load_study(folder)
    for command in (summary, dashboard):
        with pytest.raises(SystemExit) as exited:
            command.main([str(folder)])
        err = capsys.readouterr().err
        assert exited.value.code == 2 and err.count("\n") == 1 and err.startswith("cnnexp: error: "), err
        assert str(named) in err and (WHAT[case] in err or "record:" in case)
    finding = study_problem(folder)
    assert finding and str(named) in finding and finding in check.sweep_findings(folder)[0]
    assert "hunter2" not in finding, "a password the folder holds is not repeated"
    assert files(folder) == before, "not a byte of the folder changed"
    assert elsewhere.exists() == outside, "nothing created outside the folder"


def test_summary_and_check_read_a_study_without_writing_it(search, tmp_path, capsys):
    """sqlite and journal: the study is read (its counts printed), never written — study.db keeps
    its bytes, no lock or journal file appears, and a write through the reader's storage fails."""
    folder = tmp_path / "sweep"
    shutil.copytree(search, folder)
    db = files(folder)["study.db"]
    summary.main([str(folder)])
    assert "1 rejected by the shape check" in capsys.readouterr().out
    before = files(folder)
    assert before["study.db"] == db and not list(folder.glob("study.db?*")), "no journal, no WAL, no new bytes"
    assert check.sweep_findings(folder)[0] == [] and study_problem(folder) is None
    study = load_study(folder)
    with pytest.raises(optuna.exceptions.StorageInternalError) as refused:
        study.set_user_attr("written", True)
    assert "readonly database" in str(refused.value.__cause__), "SQLite itself refuses the write"
    assert files(folder) == before

    (folder / "study.db").unlink()
    (folder / "study.json").write_text(json.dumps({"storage": "journal", "study_name": "cnnexp"}))
    optuna.create_study(storage=open_storage(folder, "journal"), study_name="cnnexp").enqueue_trial({})
    before = files(folder)
    study = load_study(folder)
    assert len(study.get_trials()) == 1 and study_problem(folder) is None
    with pytest.raises(StudyRefused, match="read-only"):
        study.set_user_attr("written", True)
    assert files(folder) == before, "a journal read leaves no lock file and no appended line"


def test_a_database_is_opened_only_where_the_user_names_it(search, tmp_path, capsys):
    folder = tmp_path / "sweep"
    shutil.copytree(search, folder)
    (folder / "study.json").write_text(json.dumps({"storage": CLOSED_PORT, "study_name": "cnnexp"}))
    with pytest.raises(StudyRefused, match="folder's word"):
        load_study(folder)
    with pytest.raises(StudyRefused, match="not a readable study"):  # named: connected to (nobody listens there)
        load_study(folder, named=CLOSED_PORT)
    with pytest.raises(SystemExit):
        summary.main([str(folder), "storage=not-a-url"])
    assert "not a database URL" in capsys.readouterr().err
    assert "launch did not" in study_problem(folder), "check: a database the first launch did not name"


def test_summary_then_resume_of_an_empty_study_db_each_refuse_it_and_leave_it_empty(search, tmp_path, capsys):
    """The issue's sequence: summary wrote Optuna's 13 tables into an empty study.db, and the
    resume that had refused it then died on KeyError. Both now refuse it, and it stays empty."""
    folder = tmp_path / "sweep"
    shutil.copytree(search, folder)
    (folder / "study.db").write_bytes(b"")
    before = files(folder)
    with pytest.raises(SystemExit):
        summary.main([str(folder)])
    assert "not an Optuna study" in capsys.readouterr().err
    proc = cli("train", "-m", f"resume={folder}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(f"cnnexp: error: resume={folder}: {folder}/study.db: "
                                                           "not an Optuna study (tables: none)")
    assert files(folder) == before and not list(folder.glob(".resume-*"))


def test_a_resume_opens_a_database_only_when_its_command_line_names_it(search, tmp_path):
    from omegaconf import OmegaConf

    from cnnexp.core.errors import RunError
    from cnnexp.sweeps.relaunch import study_is_optunas

    folder = tmp_path / "sweep"
    shutil.copytree(search, folder)
    (folder / "study.json").write_text(json.dumps({"storage": CLOSED_PORT, "study_name": "cnnexp"}))

    def resume(*typed):
        return OmegaConf.create({"resume": str(folder), "hydra": {"overrides": {"hydra": list(typed)}}})

    with pytest.raises(RunError, match="not opened on a folder's word.*hydra.sweeper.storage=URL"):
        study_is_optunas(folder, folder, resume())
    with pytest.raises(RunError, match="not opened on a folder's word"):  # a launch's recorded sweeper is the folder's
        study_is_optunas(folder, folder, OmegaConf.merge(resume(), {"hydra": {"sweeper": {"storage": CLOSED_PORT}}}))
    with pytest.raises(RunError, match="not a readable study"):  # named: connected to (nobody listens there)
        study_is_optunas(folder, folder, resume(f"hydra.sweeper.storage='{CLOSED_PORT}'"))


@pytest.mark.slow
def test_a_resume_of_a_folder_naming_a_far_database_connects_to_nothing(search, tmp_path):
    folder = tmp_path / "sweep"
    shutil.copytree(search, folder)
    (folder / "study.json").write_text(json.dumps({"storage": NO_ROUTE, "study_name": "cnnexp"}))
    proc = cli("train", "-m", f"resume={folder}", timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "not opened on a folder's word" in proc.stderr and "hydra.sweeper.storage=URL" in proc.stderr
    assert "hunter2" not in proc.stderr


def test_odd_values_a_handed_over_study_holds_are_neither_tracebacks_nor_paths_out():
    """A trial's `run` that is a list or `../elsewhere`, a heartbeat that is text: the summary's
    counts and the lost-trial watch read them; a lost trial's record is rewritten only in a
    folder of the sweep's own."""
    from cnnexp.search.loop import last_heard, own_folder
    from cnnexp.search.report import counts

    study = optuna.create_study()  # in memory: the readers see trials, not storages
    for attrs in ({"retry_of": 0, "run": [1]}, {"retry_of": 0, "run": "../elsewhere"}, {"heartbeat": "soon"}):
        study.enqueue_trial({}, user_attrs=attrs)
        study.ask()
    trials = study.get_trials()
    assert counts(trials)["re-run after their worker was lost"] == 2
    assert last_heard(trials[2]) == trials[2].datetime_start.timestamp()
    assert [own_folder(t.user_attrs.get("run")) for t in trials[:2]] == [False, False]
    assert own_folder("lr=0.001,seed=1") and not own_folder("..") and not own_folder("")


@pytest.mark.slow  # imports Lightning
def test_a_trials_job_reports_nothing_to_a_study_it_may_not_open(search, tmp_path, caplog):
    from cnnexp.callbacks.report_to_study import trial_reporter

    folder = tmp_path / "sweep"
    shutil.copytree(search, folder)
    (folder / "study.json").write_text(json.dumps({"storage": NO_ROUTE, "study_name": "cnnexp"}))
    reporter = trial_reporter(folder / "kernel_size=99")
    assert reporter is not None and reporter.trial is None, "a no-op that still answers the other DDP ranks"
    assert "not opened on a folder's word" in caplog.text and "hunter2" not in caplog.text


def test_a_study_db_a_killed_writer_left_mid_write_is_named_so_and_rolled_back_by_the_resume(search, tmp_path, capsys):
    """A SIGKILL mid-commit leaves a hot journal: a read-only reader cannot roll it back, so it says
    so in one line; the resume's check lets it through, and the search (a writer) rolls it back."""
    import subprocess
    import sys

    from cnnexp.sweeps.relaunch import study_is_optunas
    from omegaconf import OmegaConf

    folder = tmp_path / "sweep"
    shutil.copytree(search, folder)
    killed = ("import os, signal, sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
              "c.execute('pragma cache_size=1'); c.execute('begin'); c.execute('create table junk as with recursive "
              "n(i) as (select 1 union all select i + 1 from n limit 20000) select i from n'); "
              "os.kill(os.getpid(), signal.SIGKILL)")
    subprocess.run([sys.executable, "-c", killed, str(folder / "study.db")])
    assert (folder / "study.db-journal").exists()
    with pytest.raises(SystemExit):
        summary.main([str(folder)])
    assert "left mid-write by a process that was killed" in capsys.readouterr().err
    assert "-m resume=SWEEP rolls it back" in study_problem(folder)
    study_is_optunas(folder, folder, OmegaConf.create({"resume": str(folder)}))  # not refused
    assert len(load_study(folder, write=True).get_trials()) == 1 and not (folder / "study.db-journal").exists()
