"""One log line per epoch instead of a progress bar, where the console is not a terminal (a log
file, `| tee`, a SLURM job's output): what the bar showed as its epoch ended, with no carriage
returns or cursor escapes. `callbacks.progress_bar_refresh=auto` chooses between the two."""

from __future__ import annotations

import logging
import sys
import time

from lightning.pytorch.callbacks import ProgressBar

from cnnexp.core.console import items_folded, job_header

log = logging.getLogger("cnnexp")
TERMINAL_REFRESH = 20  # auto on a terminal: batches between bar updates


def bar_or_lines(refresh) -> str:
    """"bar", "lines" or "none": auto draws the bar on a terminal (tqdm writes to stdout) and
    prints lines elsewhere; a number the user set is respected (0: neither)."""
    if refresh == "auto":
        return "bar" if sys.stdout.isatty() else "lines"
    return "bar" if refresh > 0 else "none"


def _in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # not under Hydra (a notebook, the bench)
        return False


class EpochLines(ProgressBar):
    """`epoch 1 (2 of 5): train/acc 0.9214  train/loss 0.2438  val/acc 0.959  val/loss 0.1467  20.5 s`
    — epochs counted from 0, as metrics.csv and the checkpoint lines count them; a sweep's job
    names itself first (`[3/12] kernel_size=5: epoch 1 …`), as its result line does: parallel
    jobs' lines interleave."""

    def __init__(self, run_dir):
        super().__init__()
        self.enabled, self.started = True, 0.0
        self.prefix = f"{job_header(run_dir, True)}: " if _in_sweep() else ""

    def disable(self) -> None:  # Lightning: ranks other than 0
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # validation has run inside the epoch by now, as the bar's final state shows it
        if not self.enabled or not trainer.is_global_zero:
            return
        metrics = {key.removesuffix("_epoch"): value for key, value in sorted(self.get_metrics(trainer, pl_module).items())
                   if key != "v_num" and not key.endswith("_step")}
        shown = [f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}" for key, value in metrics.items()]
        epochs = f" ({trainer.current_epoch + 1} of {trainer.max_epochs})" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        seconds = time.perf_counter() - self.started
        # folded to 100 columns with its time stamp; a sweep's job name first, the metrics after it
        log.info("%s", items_folded(f"{self.prefix}epoch {trainer.current_epoch}{epochs}:", [*shown, f"{seconds:.1f} s"]))
