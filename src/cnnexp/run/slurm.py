"""Inside a SLURM job (`hydra/launcher=slurm`): signals, requeueing and the job's exit state.

- SIGUSR1 or SIGUSR2 (sent before the time limit, `--signal=USR2@90` by submitit, or by a
  preempting scheduler): the run stops as interrupted, the job requeues itself with `scontrol
  requeue`, and the restarted job continues the same run folder from its last.ckpt (the resume
  a sweep job does when it finds its own folder interrupted).
- SIGTERM (`scontrol requeue`, `scancel`, the time limit): the run stops as interrupted; SLURM
  decides whether the job comes back, and if it does it continues the same way.
- A run that fails in Python still returns its record to Hydra (so the sweep goes on and its
  summary counts it), but the job process then exits 1: SLURM shows the job FAILED, not
  COMPLETED (Hydra's submitit launcher alone reports COMPLETED; facebookresearch/hydra#1928).

Our handlers are installed before Lightning's, which then leaves them in place.

Before a sweep folder exists, `check_launcher` checks every value a submitit launcher writes into
a job script (`#SBATCH --partition=…`, setup lines, srun's arguments) or hands a shell: what SLURM
accepts for each, and never a newline or another control character, which would end the
`#SBATCH` line and make the rest a command of the job. A resumed sweep's recorded launcher goes
through the same check (sweeps/relaunch.py).
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import signal
import subprocess
import unicodedata
from typing import Any

log = logging.getLogger("cnnexp")
REQUEUE_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


def check_controller(timeout_s: float = 30) -> None:
    """`hydra/launcher=slurm`: a controller answers `scontrol ping` before the sweep folder exists
    (else submitit's sbatch fails with a traceback after the folder and its job files are made)."""
    import shutil

    from cnnexp.core.errors import SettingsError

    fix = ("submit from a machine of a SLURM cluster (SLURM_CONF naming its slurm.conf), start one here "
           "(scripts/local-slurm.sh start), or run the sweep here with hydra/launcher=parallel")
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        raise SettingsError("hydra/launcher", "slurm", f"SLURM's commands (sbatch, scontrol) are not on PATH; {fix}")
    try:
        done = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise SettingsError("hydra/launcher", "slurm", f"no SLURM controller answered scontrol ping in "
                            f"{timeout_s:.0f} s; {fix}") from None
    if done.returncode != 0:
        said = [line.strip() for line in (done.stderr.splitlines()[-1:] or done.stdout.splitlines()[:1])]
        raise SettingsError("hydra/launcher", "slurm", f"no SLURM controller answers (scontrol ping: "
                            f"{said[0] if said else f'exit {done.returncode}'}); {fix}")


# ------------------------------------------------------------------ values bound for a job script
_NAME = r"[A-Za-z0-9_.-]+"
_NAMES = "letters, digits, '_', '-' and '.'"
RULES = {  # a launcher key (or sbatch option, `-` as `_`) → the text SLURM accepts, and how it is said
    "partition": (rf"{_NAME}(,{_NAME})*", f"a SLURM partition: {_NAMES} (a comma-separated list for several)"),
    "account": (_NAME, f"a SLURM account: {_NAMES}"),
    "qos": (_NAME, f"a SLURM QOS: {_NAMES}"),
    "wckey": (_NAME, f"a SLURM wckey: {_NAMES}"),
    "reservation": (rf"{_NAME}(,{_NAME})*", f"a SLURM reservation: {_NAMES}"),
    "exclude": (r"[A-Za-z0-9_.,\[\]-]+", "a node list such as node[01-04],gpu7"),
    "nodelist": (r"[A-Za-z0-9_.,\[\]-]+", "a node list such as node[01-04],gpu7"),
    "constraint": (r"[A-Za-z0-9_.,&|*\[\]()!:-]+", "node features joined by & | , (e.g. a100&ib)"),
    "gres": (r"[A-Za-z0-9_.,:-]+", "generic resources such as gpu:a100:2"),
    "gpus_per_node": (r"([A-Za-z0-9_.-]+:)?\d+", "a count of GPUs, or type:count (a100:2)"),
    "gpus_per_task": (r"([A-Za-z0-9_.-]+:)?\d+", "a count of GPUs, or type:count (a100:2)"),
    "gpus": (r"([A-Za-z0-9_.-]+:)?\d+", "a count of GPUs, or type:count (a100:2)"),
    "mem": (r"\d+[KMGTkmgt]?[Bb]?", "a size such as 16000, 16G or 16GB"),
    "mem_per_cpu": (r"\d+[KMGTkmgt]?[Bb]?", "a size such as 4000, 4G or 4GB"),
    "mem_per_gpu": (r"\d+[KMGTkmgt]?[Bb]?", "a size such as 4000, 4G or 4GB"),
    "time": (r"\d+(:\d{1,2}){0,2}|\d+-\d{1,2}(:\d{1,2}){0,2}|UNLIMITED|INFINITE",
             "SLURM's time: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"),
    "mail_type": (r"[A-Z0-9_]+(,[A-Z0-9_]+)*", "SLURM's mail types, e.g. END,FAIL"),
    "dependency": (r"[A-Za-z0-9_:,?+]+", "a SLURM dependency such as afterok:1234"),
    "exclusive": (r"true|false|True|False|user|mcs|topo", "true, user, mcs or topo"),
    "stderr_to_stdout": (r"True|False", "true or false"),
    "use_srun": (r"True|False", "true or false"),
}
COUNTS = {"timeout_min": 1, "cpus_per_task": 1, "tasks_per_node": 1, "nodes": 1, "array_parallelism": 1,
          "cpus_per_gpu": 1, "signal_delay_s": 0, "max_num_timeout": 0}  # whole numbers, at least this
LISTS = ("setup", "teardown", "srun_args")  # shell lines before/after srun; srun's own arguments
OPTION = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")  # an sbatch option's name, as additional_parameters keys are


def check_launcher(config, launcher=None, recorded=None) -> None:
    """A submitit launcher's values, as its job scripts would hold them (`launcher`: a resumed
    sweep's recorded one, from the file `recorded`), then, for SLURM, a controller that answers."""
    from omegaconf import OmegaConf

    node = config.hydra.launcher if launcher is None else launcher
    target = str(OmegaConf.select(node, "_target_", default="") or "")
    if "submitit" not in target:
        return
    check_values(launcher_values(config, node), slurm="SlurmLauncher" in target, recorded=recorded)
    if "SlurmLauncher" in target:
        check_controller()


def launcher_values(config, node) -> dict:
    """The launcher's values resolved as the launcher will resolve them, except the sweep folder,
    which is not claimed here: its path stands in (the folder named, or paths.output_dir)."""
    from omegaconf import OmegaConf

    from cnnexp.core.errors import SettingsError

    probe = OmegaConf.create(OmegaConf.to_container(config, resolve=False))
    raw_dir = str(OmegaConf.to_container(config.hydra.sweep, resolve=False).get("dir"))
    key = "hydra.sweep.dir"
    if "cnnexp.sweep_dir" in raw_dir:  # resolving it claims a fresh folder: what its path is made of
        key = "resume" if OmegaConf.select(config, "resume", default=None) else "paths.output_dir"
        probe.hydra.sweep.dir = str(OmegaConf.select(config, key))
    if control_problem(str(probe.hydra.sweep.dir)):  # the job folder, the logs' paths in the script
        raise SettingsError(key, str(probe.hydra.sweep.dir), "a folder whose path holds a newline or another "
                            "control character cannot be named in a SLURM job script; name one without")
    probe.hydra.launcher = OmegaConf.to_container(node, resolve=False)
    values = {}
    for key in probe.hydra.launcher:
        try:
            value = probe.hydra.launcher[key]
            values[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        except Exception as e:  # an interpolation that does not resolve: named as the user typed it
            raise SettingsError(f"hydra.launcher.{key}", OmegaConf.to_container(node, resolve=False).get(key),
                                f"it does not resolve ({str(e).splitlines()[0][:160]})") from None
    return values


def check_values(values: dict, slurm: bool = True, recorded=None) -> None:
    """Each value against what SLURM accepts for it; raises the SettingsError of the first that is not."""
    from cnnexp.core.errors import SettingsError

    where = f"; it is recorded in {recorded}, which a resume checks as if typed" if recorded else ""
    if slurm:
        unknown = sorted(set(values) - slurm_keys())
        if unknown:
            raise SettingsError(f"hydra.launcher.{shown(unknown[0])}", values[unknown[0]],
                                f"not an option of SLURM's launcher (its options: {', '.join(sorted(slurm_keys() - {'_target_'}))}){where}")
    for key, value in values.items():
        problem = value_problem(key, value)
        if problem:
            name, bad, said = problem
            raise SettingsError(f"hydra.launcher.{name}", bad, said + where)


def value_problem(key: str, value: Any) -> tuple | None:
    """(key as shown, value, what is wrong) for one launcher value, or None when SLURM takes it."""
    if value is None:
        return None
    if key == "additional_parameters":
        return options_problem(value)
    text = control_problem(value)
    if text:
        return key, value, text
    if key in COUNTS:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= COUNTS[key]
        return None if ok else (key, value, f"a whole number of at least {COUNTS[key]}")
    if key == "mem_gb":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
        return None if ok else (key, value, "a number of GB above 0 (e.g. 16)")
    if key in LISTS:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value)
        return None if ok else (key, value, "a list of lines, e.g. [\"module load cuda\"]")
    if key in RULES:
        pattern, said = RULES[key]
        return None if re.fullmatch(pattern, str(value)) else (key, value, f"{said} — SLURM takes no other characters")
    return None


def options_problem(options: Any) -> tuple | None:
    """additional_parameters: sbatch options by name (mail-type: END); each checked as its own key."""
    if not isinstance(options, dict):
        return "additional_parameters", options, "sbatch options by name, e.g. {mail-type: END}"
    for name, value in options.items():
        if not OPTION.fullmatch(str(name)):
            return (f"additional_parameters.{shown(name)}", value,
                    "an sbatch option's name is letters, digits, '-' and '_' (e.g. mail-type)")
        if isinstance(value, (dict, list)):
            return f"additional_parameters.{name}", value, "one value (text, a number or true)"
        problem = value_problem(str(name).replace("-", "_"), value)
        if problem:
            return (f"additional_parameters.{name}", value, problem[2])
    return None


def control_problem(value: Any) -> str | None:
    """A newline (or any control character) anywhere in a value, a key or a list's item: it would
    end the script's line and make what follows a command of the job."""
    texts = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else \
        [t for kv in value.items() for t in kv] if isinstance(value, dict) else []
    for text in texts:
        if isinstance(text, (list, tuple, dict)):
            found = control_problem(text)
            if found:
                return found
        elif isinstance(text, str) and any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text):
            return ("it holds a newline or another control character, which would end its line of the "
                    "job script and run the rest as a command; give it on one line")
    return None


def shown(key: Any) -> str:
    """A key as one line: quoted where it holds what a key should not."""
    return str(key) if re.fullmatch(r"[A-Za-z0-9_.-]+", str(key)) else repr(str(key))


def slurm_keys() -> set:
    """The keys Hydra's SLURM launcher hands on: its own, and submitit's sbatch parameters under
    the names Hydra gives them (name, timeout_min, mem_gb, tasks_per_node)."""
    from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
    from submitit.slurm.slurm import _get_default_parameters

    hydra_names = {"job_name": "name", "time": "timeout_min", "mem": "mem_gb", "ntasks_per_node": "tasks_per_node"}
    return set(SlurmQueueConf.__dataclass_fields__) | {hydra_names.get(k, k) for k in _get_default_parameters()}


def in_job() -> bool:
    """A batch job step (sbatch/srun), not an interactive shell inside an allocation."""
    return "SLURM_JOB_ID" in os.environ and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive")


def rank() -> int:
    return int(os.environ.get("SLURM_PROCID", "0"))


def install_handlers() -> None:
    """A signal ends the run as Ctrl-C does (recorded as interrupted), remembering which."""
    from cnnexp.core import stopping

    stopping.install((signal.SIGTERM, *REQUEUE_SIGNALS))


def after_interrupt() -> None:
    """A requeue signal: put the job back in the queue (once, from rank 0) before this process ends."""
    from cnnexp.core import stopping

    if stopping.received not in REQUEUE_SIGNALS or rank() != 0:
        return
    job = os.environ.get("SLURM_ARRAY_JOB_ID") and f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}" \
        or os.environ["SLURM_JOB_ID"]
    done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    if done.returncode == 0:
        log.warning("SLURM job %s requeued: it will continue this run from its last.ckpt", job)
    else:
        log.error("scontrol requeue %s failed: %s", job, done.stderr.strip())


def fail_job_at_exit() -> None:
    """Exit 1 once the job has written its result, so that SLURM records the job as FAILED."""
    def exit_failed() -> None:
        logging.shutdown()
        os._exit(1)

    atexit.register(exit_failed)  # registered last, so it runs first: the result is already written


class QuietSacct(logging.Filter):
    """Clusters without accounting (and scripts/local-slurm.sh) have no sacct: submitit then reads
    each job's result file instead, and says so once rather than at every poll."""

    told = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "sacct error" not in record.getMessage():
            return True
        if QuietSacct.told:
            return False
        QuietSacct.told = True
        record.msg, record.args = "sacct is not available (no SLURM accounting): job results are read from their files", ()
        record.levelno, record.levelname = logging.INFO, "INFO"
        return True
