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
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import subprocess

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
