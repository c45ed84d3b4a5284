"""What a run records of where it came from (provenance.json, code.patch), what compare makes of
it, and `python -m cnnexp.reproduce`: its refusals, the code change it names before training, and
a real short run that comes back exactly (slow)."""

from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cnnexp.compare import main as compare_main
from cnnexp.reproduce import main as reproduce_main
from cnnexp.run.provenance import capture, git_state, write
from tests.helpers import PROJECT, SHORT, cli, in_process

GIT = shutil.which("git") is not None
needs_git = pytest.mark.skipif(not GIT, reason="git is not installed")


def _git(where: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(where), *args], check=True, capture_output=True, text=True, env=env).stdout


@pytest.fixture
def repo(tmp_path) -> Path:
    """A tiny git checkout: one commit, then an uncommitted edit and a new, untracked source file."""
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("x = 1\ny = 2\n")
    (root / ".gitignore").write_text("ignored.txt\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "first")
    (root / "pkg" / "mod.py").write_text("x = 1\ny = 3\n")
    (root / "pkg" / "new.py").write_text("z = 4")  # no newline at its end
    (root / "ignored.txt").write_text("not code\n")
    return root


@needs_git
def test_capture_records_head_and_the_uncommitted_change_with_new_files(repo, tmp_path):
    code, patch = git_state(repo / "pkg")
    assert code["commit"] == _git(repo, "rev-parse", "HEAD").strip() and code["branch"] == "main"
    assert code["dirty"] is True
    assert "-y = 2\n+y = 3" in patch and "new file mode" in patch and "+z = 4" in patch
    assert "ignored.txt" not in patch, "what git ignores is not code"
    # the patch rebuilds the tree: the commit, with it applied, is the checkout as it ran
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(repo), str(clone))
    (tmp_path / "change.patch").write_text(patch)
    _git(clone, "apply", str(tmp_path / "change.patch"))
    assert (clone / "pkg" / "mod.py").read_text() == "x = 1\ny = 3\n"
    assert (clone / "pkg" / "new.py").read_text() == "z = 4"
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "second")
    code, patch = git_state(repo)
    assert code["dirty"] is False and patch == ""


def test_outside_git_the_run_says_what_it_could_not_record(tmp_path):
    """The package imported from a copy outside any git checkout: a note, no commit, no patch."""
    (tmp_path / "src").mkdir()
    shutil.copytree(PROJECT / "src" / "cnnexp", tmp_path / "src" / "cnnexp",
                    ignore=shutil.ignore_patterns("__pycache__"))
    script = ("import json; from cnnexp.run.provenance import capture; "
              "print(json.dumps({k: v for k, v in capture({'data': {'name': 'mnist'}}, []).items() if k != 'patch'}))")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tmp_path / "src"), "GIT_CEILING_DIRECTORIES": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert "not a git checkout" in found["code"]["note"] and "commit" not in found["code"]
    assert found["packages"]["python"] and found["machine"]["cpu"] and found["data"]["name"] == "mnist"


def test_a_real_run_records_commit_patch_packages_and_cpu(quick_run):
    run, _ = quick_run
    found = json.loads((run / "provenance.json").read_text())
    assert found["command"].split()[1:3] == ["-m", "cnnexp.train"] and "trainer.max_epochs=2" in found["overrides"]
    assert "torch" in found["packages"] and "lightning" in found["packages"]
    assert found["machine"]["cpu"] and found["machine"]["cores"] and found["machine"]["torch_threads"] >= 1
    assert found["data"] == capture({"data": {"name": "mnist"}}, [])["data"]
    code = found["code"]
    if "note" in code:  # a copy of the project outside git: said, not guessed
        assert "not a git checkout" in code["note"]
    else:
        assert len(code["commit"]) == 40 and (run / "code.patch").is_file() == code["dirty"]


# ------------------------------------------------------------------ compare and reproduce, by their records
def _edited(run: Path, where: Path, commit: str = "0" * 40, patch: str = "diff --git a/x.py b/x.py\n+edit\n") -> Path:
    """A copy of `run` whose record says it ran on other code, with another seed."""
    shutil.copytree(run, where, ignore=shutil.ignore_patterns("checkpoints", "events*"))
    found = json.loads((where / "provenance.json").read_text())
    found["code"] = {"commit": commit, "branch": "other", "dirty": True}
    write(where, {**found, "patch": patch})
    config = where / "config.yaml"
    text = config.read_text().replace("seed: 42", "seed: 7")
    config.write_text(text.replace("\n    padding: 1\n", "\n    padding: same\n", 1))  # the same pixels, typed otherwise
    return where


def test_compare_names_the_config_and_code_differences(quick_run, tmp_path, capsys):
    run, _ = quick_run
    edited = _edited(run, tmp_path / "edited")
    run = tmp_path / "clean"  # A: the same run with no uncommitted change, whatever the checkout's state
    shutil.copytree(quick_run[0], run, ignore=shutil.ignore_patterns("checkpoints", "events*", "code.patch"))
    found = json.loads((run / "provenance.json").read_text())
    write(run, {**found, "code": {**found["code"], "dirty": False} if "commit" in found["code"] else found["code"],
                "patch": ""})
    code, out, err = in_process(compare_main, [run, edited, f"out={tmp_path}"], capsys)
    assert code == 0, err
    assert "| seed | 42 | 7 |" in out
    assert "padding" not in out.split("what else differs")[0], "`same` with a 3×3 kernel is 1: one fact, one form"
    assert "commit" in out and "000000000000" in out and "branch" in out
    assert "the uncommitted changes differ" in out and re.search(r"files: .*x\.py", out), out
    assert "packages:" not in out and "data:" not in out, "nothing that is the same"
    metrics = out[out.rindex("|  | n |"):]  # (the diff above may quote anything)
    assert "1 run — no interval" not in metrics and "single runs — no interval and no test" in metrics
    assert "sd" not in metrics.splitlines()[0] and "Welch" not in metrics.splitlines()[0], "only informative columns"
    assert max(len(line) for line in out.splitlines() if not line.startswith(("A  ", "B  ", "written:"))) <= 100


def test_reproduce_says_the_code_changed_before_training(quick_run, tmp_path, capsys):
    run, _ = quick_run
    edited = _edited(run, tmp_path / "edited")
    before = sorted(p.name for p in edited.iterdir())
    code, out, err = in_process(reproduce_main, [edited, f"out={tmp_path / 'again'}"], capsys)
    assert code == 2 and "code: commit: recorded 000000000000" in out and "code: patch:" in out
    assert err.startswith("cnnexp: error: ") and err.count("\n") == 1 and "force=true" in err
    assert not (tmp_path / "again").exists() and sorted(p.name for p in edited.iterdir()) == before


def test_reproduce_refusals_are_one_line_and_write_nothing(quick_run, tmp_path, capsys):
    run, _ = quick_run
    older = tmp_path / "older"
    shutil.copytree(run, older, ignore=shutil.ignore_patterns("checkpoints", "events*"))
    (older / "provenance.json").unlink()
    sweep, empty = tmp_path / "sweep", tmp_path / "empty"
    empty.mkdir()
    shutil.copytree(older, sweep / "kernel_size=3")
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    cases = [([tmp_path / "nothing"], "no such folder"),
             ([empty], "not a run folder"),
             ([sweep], "a sweep, not a run"),
             ([older], "no provenance.json"),
             ([run, "force=maybe"], "force=maybe: true or false"),
             ([run, "tolerance=-1"], "tolerance=-1"),
             ([run, "code=mine"], "code=mine"),
             ([run, run], "name one run folder"),
             ([run, f"out={run / 'inside'}"], "never writes into the run")]
    for args, says in cases:
        code, _, err = in_process(reproduce_main, args, capsys)
        assert code == 2 and says in err and err.count("\n") == 1 and err.startswith("cnnexp: error: "), (args, err)
    assert not (run / "inside").exists() and not (tmp_path / "nothing").exists()
    code, out, _ = in_process(reproduce_main, ["--help"], capsys)
    assert code == 0 and out.startswith("usage: python -m cnnexp.reproduce")


@needs_git
def test_a_patch_that_no_longer_applies_is_one_line(quick_run, tmp_path, capsys):
    head = subprocess.run(["git", "-C", str(PROJECT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("the project is not a git checkout here")
    run, _ = quick_run
    broken = _edited(run, tmp_path / "broken", commit=head.stdout.strip(),
                     patch="diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n"
                           "@@ -1,1 +1,1 @@\n-no such line in the readme\n+a change\n")
    code, _, err = in_process(reproduce_main, [broken, "code=recorded", f"out={tmp_path / 'again'}"], capsys)
    assert code == 2 and "no longer applies" in err and err.count("\n") == 1, err
    assert not (tmp_path / "again").exists()


# ------------------------------------------------------------------ a real re-run
@pytest.mark.slow
def test_reproduce_of_a_run_reports_a_match(quick_run, tmp_path):
    run, _ = quick_run
    proc = cli("reproduce", str(run), f"out={tmp_path / 'again'}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "what differs from the record: nothing" in proc.stdout
    assert "exact agreement expected" in proc.stdout, "the CPU, the same threads and packages"
    assert "best_val_acc" in proc.stdout and "differs by" not in proc.stdout
    assert "reproduced: every recorded metric came back" in proc.stdout
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert again["test_acc"] == json.loads((run / "results.json").read_text())["test_acc"]


def test_mlflow_tags_and_tensorboard_text_carry_the_provenance(quick_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from cnnexp.tracking.loggers import source_tags

    run, _ = quick_run
    found = json.loads((run / "provenance.json").read_text())
    tags = source_tags(run)
    assert tags["mlflow.source.type"] == "LOCAL" and "cnnexp.train" in tags["mlflow.source.name"]
    assert tags.get("mlflow.source.git.commit") == found["code"].get("commit")
    events = EventAccumulator(str(run), size_guidance={"tensors": 0}).Reload()
    assert "run/provenance/text_summary" in events.Tags()["tensors"]
    text = events.Tensors("run/provenance/text_summary")[0].tensor_proto.string_val[0].decode()
    assert found["machine"]["cpu"] in text and "packages.torch" in text


@pytest.mark.slow
def test_one_run_of_a_sweep_is_reproduced_by_its_folder(tmp_path, shared_data, calibrated):
    out = tmp_path / "out"
    proc = cli("train", "-m", "model.kernel_size=3,5", *SHORT, "trainer.limit_train_batches=5", f"paths.output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (sweep,) = (out / "multirun").glob("*/*")
    assert json.loads((sweep / "provenance.json").read_text())["overrides"][0] == "model.kernel_size=3,5"
    summary = sweep / "summary.csv"
    before = summary.read_bytes()
    proc = cli("reproduce", str(sweep / "kernel_size=5"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "reproduced: every recorded metric came back" in proc.stdout
    (again,) = (out / "reproduced").iterdir()  # beside the runs, never inside the sweep
    assert again.name.startswith("kernel_size=5-") and "model.kernel_size=5" in json.loads(
        (again / "provenance.json").read_text())["overrides"]
    assert summary.read_bytes() == before and sorted(p.name for p in sweep.iterdir() if p.is_dir()) == [
        "_sweep", "kernel_size=3", "kernel_size=5"]


def test_the_gpu_driver_is_read_from_procs_line():
    from cnnexp.run.provenance import driver_version

    assert driver_version("NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023") == "535.104.05"
    assert driver_version("NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build") == "570.86.15"
    assert driver_version("") is None


def test_compare_takes_bias_auto_as_what_it_built():
    from cnnexp.compare import effective_bias

    blocks = [{"bias": "auto", "norm": "none"}, {"bias": "auto", "norm": "batch"}, {"bias": True, "norm": "batch"}]
    assert effective_bias({"model": {"blocks": blocks}}) == {
        "model.blocks.0.bias": True, "model.blocks.1.bias": False, "model.blocks.2.bias": True}
