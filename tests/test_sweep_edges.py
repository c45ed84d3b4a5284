"""A sweep folder handed over, read by `summary` and `compare`: every odd record is a row marked
`unreadable` or one line, never a traceback; a summary that cannot write prints its table, then
one line; a job stopped while starting is recorded `interrupted`. The sweeps here are built by
hand from the session's quick_run (no training), except the one real Ctrl-C (slow)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import SHORT, cli, in_process, run_env, sweep_dir, tmpfs
from tests.test_bad_input import one_error_line, snapshot

pytestmark = pytest.mark.usefixtures("calibrated")

GRID = ["model.kernel_size=3,5", "seed=1,2"]
MULTIRUN = """hydra:
  overrides:
    task: ["model.kernel_size=3,5", "seed=1,2"]
  sweeper:
    params: null
sweep_options:
  replicate_keys: [seed]
"""


def _run(source: Path, folder: Path, overrides: list, **changes) -> Path:
    """A run folder of the sweep: quick_run's records (no checkpoints, no events), its own setting."""
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("checkpoints", "events.out.*", ".cnnexp.lock"))
    record = json.loads((folder / "results.json").read_text())
    (folder / "results.json").write_text(json.dumps({**record, "overrides": overrides, **changes}))
    return folder


@pytest.fixture(scope="module")
def made(quick_run, tmp_path_factory) -> Path:
    """A 2 × 2 sweep (kernel 3, 5 × seeds 1, 2) of real records, made by hand."""
    sweep = tmp_path_factory.mktemp("handmade") / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(MULTIRUN)
    for i, (k, seed) in enumerate([(3, 1), (3, 2), (5, 1), (5, 2)]):
        _run(quick_run[0], sweep / f"kernel_size={k},seed={seed}", [f"model.kernel_size={k}", f"seed={seed}"],
             best_val_acc=0.5 + 0.1 * i, test_acc=0.5 + 0.1 * i)
    return sweep


def _summary(folder: Path, capsys) -> tuple:
    """`cnnexp.summary FOLDER` in this process: (exit code, stdout, stderr)."""
    from cnnexp.summary import main

    return in_process(main, [folder], capsys)


def _write(text: str):
    return lambda path: path.write_text(text)


# The fault matrix of a run's results.json: (case, how it is made, what its row says).
RECORDS = [
    ("text-for-a-number", lambda p: _edit(p, best_val_acc="high"), 'best_val_acc is "high", not a number'),
    ("a-json-list", _write("[1, 2]"), "a JSON list, not an object"),
    ("json-null", _write("null"), "a JSON null"),
    ("nan", lambda p: p.write_text(p.read_text().replace('"test_acc": ', '"test_acc": NaN, "x": ')),
     "test_acc is nan"),
    ("infinity", lambda p: p.write_text(p.read_text().replace('"test_loss": ', '"test_loss": -Infinity, "x": ')),
     "not a finite number"),
    ("huge-int", lambda p: p.write_text(p.read_text().replace('"params": ', '"params": 1' + "0" * 400 + ', "x": ')),
     "params is"),
    ("accuracy-3", lambda p: _edit(p, test_acc=3.0), "outside what it can be"),
    ("a-bool", lambda p: _edit(p, images_per_s=True), "images_per_s is true, not a number"),
    ("own-best-key", lambda p: _edit(p, best_train_acc=[1]), "best_train_acc is [1], not a number"),
    ("status-unknown", lambda p: _edit(p, status="done"), 'status "done" is none of'),
    ("status-a-list", lambda p: _edit(p, status=["ok"]), "status [\"ok\"] is none of"),
    ("overrides-text", lambda p: _edit(p, overrides="model.kernel_size=3"), "overrides is not a list"),
    ("reason-a-dict", lambda p: _edit(p, status="failed", reason={"a": 1}), "reason is"),
    ("monitor-a-list", lambda p: _edit(p, monitor=["val/acc"]), "monitor is"),
    ("mode-up", lambda p: _edit(p, mode="up"), 'mode is "up", not max or min'),
    ("epochs-text", lambda p: _edit(p, epochs="2"), "epochs is"),
    ("extends-a-list", lambda p: _edit(p, extends=[1]), "extends is not"),
    ("lone-surrogate", lambda p: p.write_text(p.read_text().replace('"status"', '"r": "\\ud800", "status"')),
     "not Unicode"),
    ("not-utf8", lambda p: p.write_bytes(b'{"status": "ok\xff"}'), "not text"),
    ("deep-nesting", _write("[" * 100_000 + "]" * 100_000), "not JSON"),
    ("truncated", lambda p: p.write_text(p.read_text()[:40]), "not JSON"),
    ("a-folder", lambda p: (p.unlink(), p.mkdir()), "a folder where a file belongs"),
    ("a-fifo", lambda p: (p.unlink(), os.mkfifo(p)), "not a plain file"),  # never opened: it would block
    ("a-link-out", lambda p: (p.unlink(), p.symlink_to("/etc/hostname")), "not followed"),
    ("too-large", lambda p: os.truncate(p, 9 << 20), "more than a record holds"),
]


def _edit(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_odd_records_are_unreadable_rows_and_the_rest_ranked(made, tmp_path, capsys):
    """Each case in its own run folder of one sweep: one summary, each row says why; no traceback."""
    sweep = tmp_path / "sweep"
    shutil.copytree(made, sweep)
    for name, make, _ in RECORDS:
        make(_run(made / "kernel_size=3,seed=1", sweep / f"odd={name}", ["model.kernel_size=3", "seed=9"])
             / "results.json")
    (sweep / "odd=a-linked-run").symlink_to(made / "kernel_size=5,seed=2", target_is_directory=True)
    escape = _run(made / "kernel_size=3,seed=1", sweep / "odd=esc\x1b[2Jname\nx", ["model.kernel_size=7", "seed=1"],
                  status="failed\x1b]0;pwned\x07")
    fifo_lock = _run(made / "kernel_size=3,seed=1", sweep / "odd=fifo-lock", ["model.kernel_size=3", "seed=8"],
                     status="running")
    os.mkfifo(fifo_lock / ".cnnexp.lock")  # opened to ask whether a run holds it, it would wait forever
    code, out, err = _summary(sweep, capsys)
    assert code == 0 and "Traceback" not in out + err, err[-3000:]
    rows = {r["run"]: r for r in csv.DictReader((sweep / "summary_runs.csv").open())}
    assert rows["odd=fifo-lock"]["status"] == "dead"
    for name, _, says in RECORDS:
        row = rows[f"odd={name}"]
        assert row["status"] == "unreadable" and says in row["reason"], (name, row["reason"])
        assert f"\n  odd={name}: results.json: " in err, "each listed after the table, with why"
    assert rows["odd=a-linked-run"]["status"] == "unreadable" and "link" in rows["odd=a-linked-run"]["reason"]
    assert f"{len(RECORDS) + 2} of {len(rows)} runs' results.json could not be read" in err
    assert [r["status"] for r in rows.values() if r["run"].startswith("kernel")] == ["ok"] * 4
    assert "| kernel_size= |" not in out, "an unreadable run belongs to no setting"
    assert "\x1b" not in out + err and "\x07" not in out + err, "control characters escaped, not acted on"
    assert "odd=esc\\x1b[2Jname\\nx: results.json: status \"failed\\u001b]0;pwned\\u0007\"" in err, err
    assert (sweep / "summary.png").is_file() and Path("/etc/hostname").exists()


def test_a_cell_is_one_line_of_plain_text():
    from cnnexp.sweeps.tables import markdown, printable

    assert printable("a\nb\x1b[2J\tc ± ü") == "a\\nb\\x1b[2J\\tc ± ü"
    assert markdown(["run"], [["x\ny|z"]]).splitlines()[-1] == "| x\\ny\\|z |"


def test_a_record_of_the_sweep_itself_that_cannot_be_read_is_one_line(made, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for multirun, says in [("sweep_options: {replicate_keys: seed}\n", "not a list of keys"),
                           ("hydra: [unclosed\n  - {", "not readable YAML"),
                           (None, "not followed")]:
        shutil.rmtree(sweep, ignore_errors=True)
        shutil.copytree(made, sweep)
        if multirun is None:
            (sweep / "multirun.yaml").unlink()
            (sweep / "multirun.yaml").symlink_to(made / "multirun.yaml")
        else:
            (sweep / "multirun.yaml").write_text(multirun)
        before = snapshot(sweep)
        code, out, err = _summary(sweep, capsys)
        assert code == 2 and err.startswith("cnnexp: error: ") and err.count("\n") == 1 and says in err, err
        assert snapshot(sweep) == before


def test_summary_writes_whole_or_says_what_it_did_not_write(made, tmp_path, capsys):
    """A folder where summary.csv goes, a file where _sweep goes, a link where a setting's session
    goes: the table, then one line (exit 2), and nothing written — in the sweep or where a link
    points. Summarised twice, _sweep holds one event file, not two."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "events.out.tfevents.keep").write_text("theirs")
    sweep = tmp_path / "sweep"
    for name, block, says in [("summary.csv", lambda s: (s / "summary.csv").mkdir(), "move that folder away"),
                              ("_sweep", lambda s: (s / "_sweep").write_text(""), "move that file away"),
                              ("a session", lambda s: ((s / "_sweep").mkdir(),
                                                       (s / "_sweep" / "kernel_size=3").symlink_to(outside)),
                               "a link, where a setting's TensorBoard session goes")]:
        shutil.rmtree(sweep, ignore_errors=True)
        shutil.copytree(made, sweep)
        block(sweep)
        before = snapshot(sweep)
        code, out, err = _summary(sweep, capsys)
        assert code == 2 and "| kernel_size=5 |" in out, (name, err)
        assert err.startswith("cnnexp: error: ") and err.count("\n") == 1 and says in err, (name, err)
        assert snapshot(sweep) == before and not list(sweep.rglob("*.part")), name
    assert [p.name for p in outside.iterdir()] == ["events.out.tfevents.keep"]
    shutil.rmtree(sweep)
    shutil.copytree(made, sweep)
    for _ in range(2):
        assert _summary(sweep, capsys)[0] == 0
    assert len(list((sweep / "_sweep").glob("events.out.tfevents.*"))) == 1, "rewritten, not added to"


@pytest.fixture
def read_only(tmp_path):
    """A small tmpfs, remounted read-only by the test (the tests run as root); skipped where mount is refused."""
    with tmpfs(tmp_path / "disk", "size=20m") as mount:
        yield mount


def test_summary_of_a_read_only_sweep_prints_the_table_then_one_line(made, read_only):
    sweep = read_only / "sweep"
    shutil.copytree(made, sweep)
    before = snapshot(sweep)
    subprocess.run(["mount", "-o", "remount,ro", str(read_only)], check=True)
    proc = cli("summary", str(sweep))
    assert proc.returncode == 2 and "| kernel_size=5 |" in proc.stdout, proc.stderr[-2000:]
    line = one_error_line(proc)
    assert "Read-only file system" in line and "were not written" in line and ".part" not in line, line
    assert snapshot(sweep) == before


def test_a_job_stopped_while_starting_is_interrupted_and_drawn(made, tmp_path, capsys):
    """What a job stopped before its record leaves (train.py, sweeps/callback.record_stopped_job):
    its row says interrupted, and summary.png is drawn with its setting marked."""
    from cnnexp.sweeps.callback import record_stopped_job

    sweep = tmp_path / "sweep"
    shutil.copytree(made, sweep, ignore=shutil.ignore_patterns("kernel_size=5,*"))
    job = sweep / "kernel_size=5,seed=1"
    job.mkdir()
    record_stopped_job(job, ["model.kernel_size=5", "seed=1"])
    record_stopped_job(job, ["never", "written"])  # a record there already is kept
    record = json.loads((job / "results.json").read_text())
    assert record["status"] == "interrupted" and record["untrained"] and record["overrides"][0] == "model.kernel_size=5"
    from cnnexp.check import run_findings

    assert run_findings(job)[0] == []  # the checker takes it as the record it is: no config.yaml is due
    code, out, err = _summary(sweep, capsys)
    rows = {r["run"]: r for r in csv.DictReader((sweep / "summary_runs.csv").open())}
    assert code == 0 and rows[job.name]["status"] == "interrupted" and "| kernel_size=5 | 1 | 0 |" in out, out
    assert (sweep / "summary.png").is_file()


def test_sweeper_options_on_a_resume_without_m_are_one_line(made, quick_run):
    from cnnexp.core.errors import RunError
    from cnnexp.train import with_sweeper_of_resumed_search

    for argv, says in [([f"resume={made}", "hydra.sweeper.n_trials=5"], "this sweep is a grid, with no trials to add"),
                       ([f"resume={quick_run[0]}", "hydra.sweeper.n_trials=5"], "continues one run, which takes none")]:
        with pytest.raises(RunError, match=says):
            with_sweeper_of_resumed_search(["train", *argv])
    proc = cli("train", f"resume={made}", "hydra.sweeper.n_trials=5")  # Hydra said: Key 'n_trials' not in …
    assert proc.returncode == 2 and "a grid, with no trials to add" in one_error_line(proc)


def _compare(capsys, *args) -> tuple:
    from cnnexp.compare import main

    return in_process(main, args, capsys)


def test_compare_reads_records_with_care(made, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    shutil.copytree(made, sweep)
    run, other = sweep / "kernel_size=3,seed=1", sweep / "kernel_size=5,seed=1"
    out = tmp_path / "out"
    cases = [
        ("metrics.csv", "epoch,val/acc\nfirst,0.5\n", "not a run's epochs"),
        ("metrics.csv", "epoch,val/acc\n0,high\n", "not a run's epochs"),
        ("config.yaml", "[1, 2]\n", "not a run's config"),
        ("config.yaml", "model: {kernel_size: [unclosed\n", "not readable YAML"),
        ("results.json", '{"status": "ok", "best_val_acc": "high"}', "best_val_acc is \"high\""),
        ("results.json", None, "not followed"),
    ]
    for name, text, says in cases:
        shutil.copy2(made / run.name / name, run / name) if (made / run.name / name).exists() else None
        (run / name).unlink()
        if text is None:
            (run / name).symlink_to(made / run.name / name)
        else:
            (run / name).write_text(text)
        code, _, err = _compare(capsys, str(run), str(other), f"out={out}")
        assert code == 2 and err.startswith("cnnexp: error: ") and err.count("\n") == 1 and says in err, (name, err)
        (run / name).unlink()
        shutil.copy2(made / run.name / name, run / name)
    assert not out.exists(), "read before anything is written"
    (run / "results.json").write_text("[]")  # in a sweep: its setting is compared over the runs it has
    code, stdout, err = _compare(capsys, str(sweep), f"out={out}")
    assert code == 0 and f"A  {sweep}:kernel_size=3\n" in stdout and "| n | 1 | 2 |" in stdout, stdout + err
    for where, says in [("", "out='' is empty"), (str(run / "results.json"), "compare.csv and compare.png were not written")]:
        code, stdout, err = _compare(capsys, str(sweep), f"out={where}")
        assert code == 2 and err.count("\n") == 1 and says in err, err


# ------------------------------------------------------------------ a real Ctrl-C (make test-all)
@pytest.mark.slow
def test_ctrl_c_as_a_job_starts_records_it_interrupted(tmp_path, shared_data):
    """SIGINT as soon as the second job's folder exists: that job is `interrupted` (whichever
    phase of its start the signal met), summary.png is drawn, and a resume runs it."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "cnnexp.train", "-m", "model.kernel_size=3,5", *SHORT,
                             f"paths.output_dir={out}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=run_env())
    try:
        while proc.poll() is None and not list(out.glob("multirun/*/*/kernel_size=5")):
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    sweep = sweep_dir(out)
    assert json.loads((sweep / "kernel_size=5" / "results.json").read_text())["status"] == "interrupted"
    assert (sweep / "summary.png").is_file()
    resumed = cli("train", "-m", f"resume={sweep}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((sweep / "kernel_size=5" / "results.json").read_text())["status"] == "ok"


def test_a_resume_stopped_before_any_run_leaves_the_sweep_as_it_was(made, tmp_path, monkeypatch):
    """Ctrl-C while a resume launches, before any run began (train.interrupted → SettingsCheck.stop):
    no .resume-<time>/ of a launch that ran nothing, the summary files untouched."""
    from cnnexp.sweeps.callback import SettingsCheck
    from cnnexp.sweeps.relaunch import runs_state

    sweep = tmp_path / "sweep"
    shutil.copytree(made, sweep)
    (sweep / "summary.csv").write_text("the summary this resume found\n")
    launch = sweep / ".resume-2026-12-07_10-00-00"
    launch.mkdir()
    (launch / "multirun.yaml").write_text(MULTIRUN)
    for name, value in {"sweep_dir": sweep, "launch": launch, "before": runs_state(sweep), "lock": None}.items():
        monkeypatch.setattr(SettingsCheck, name, value)
    SettingsCheck.stop()
    assert not launch.exists() and (sweep / "summary.csv").read_text() == "the summary this resume found\n"


def test_storage_named_for_a_study_kept_in_the_folder_is_one_line(made, capsys):
    from cnnexp.summary import main

    code, out, err = in_process(main, [made, "storage=sqlite:////tmp/cnnexp-not-this.db"], capsys)
    assert code == 2 and "would not be read; leave storage= out" in err and not Path("/tmp/cnnexp-not-this.db").exists()
