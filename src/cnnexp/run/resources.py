"""What a run asks of the machine: its share of the cores, and memory checked against the
plan's estimate before training (an allocation failure becomes one line)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

from omegaconf import OmegaConf

from cnnexp.core.errors import RunError
from cnnexp.config.settings import Settings

log = logging.getLogger("cnnexp")


def share_cores(settings: Settings) -> None:
    """Processes that run side by side split the cores: processes × torch threads ≤ cores.
    They are parallel sweep jobs, or DDP's CPU processes."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    launcher = hc.launcher if "launcher" in hc else {}
    n_jobs = OmegaConf.select(launcher, "n_jobs", default=None) or 1
    cpus = OmegaConf.select(launcher, "cpus_per_task", default=None)  # submitit (SLURM or local)
    t = settings.trainer
    if t.strategy.startswith("ddp") and t.accelerator == "cpu" and isinstance(t.devices, int):
        n_jobs *= t.devices
    threads = max(1, (os.cpu_count() or 1) // n_jobs) if n_jobs > 1 else cpus
    if threads:
        import torch

        torch.set_num_threads(int(threads))


class memory_errors_explained:
    """Warn before training when the plan's memory estimate exceeds what the machine has free;
    turn an allocation failure into one line naming the estimate and a smaller setting."""

    def __init__(self, settings: Settings):
        from cnnexp.arithmetic.geometry import memory_estimate

        self.settings = settings
        self.need = memory_estimate(settings.model.layers, settings.data.batch_size, settings.optimizer.name)
        self.free = available_memory()
        if self.free and self.need > self.free:
            log.warning("this setting needs about %s for training but %s is free; it may fail. %s",
                        _gb(self.need), _gb(self.free), self.smaller())

    def smaller(self) -> str:
        batch = self.settings.data.batch_size
        return f"Try data.batch_size={max(1, batch // 4)} or fewer channels (model.blocks.N.channels)."

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb) -> bool:
        if error is None:
            return False
        text = str(error)
        if isinstance(error, MemoryError) or "out of memory" in text.lower() or "can't allocate memory" in text \
                or type(error).__name__ == "OutOfMemoryError":
            raise RunError(f"ran out of memory while training (estimated need {_gb(self.need)}, "
                           f"{_gb(self.free) if self.free else 'unknown'} free). {self.smaller()}") from None
        return False


def available_memory() -> Optional[int]:
    """Bytes of memory free for a new allocation (MemAvailable), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"
