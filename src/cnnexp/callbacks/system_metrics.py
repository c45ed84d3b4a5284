"""System metrics over a run (`callbacks.system_metrics.every_s`): the process's CPU use and memory,
the machine's load and free memory, and each GPU's memory (and utilisation, where NVML answers),
as `system/…` curves in every logger the run has — TensorBoard, MLflow, W&B — by training step.

Read from the operating system directly (os.times, /proc), with no dependency: one sample costs
tens of microseconds (`python -m cnnexp.bench system_metrics`), taken at most every `every_s`
seconds of training and at each epoch's end. Lightning's DeviceStatsMonitor logs every step and
needs psutil for the CPU; this is the few numbers MLflow and W&B show by default, at a cost that
does not show.
"""

from __future__ import annotations

import os
import time
from typing import Dict, Optional

import lightning as L

MB = 2 ** 20


def _rss_bytes() -> Optional[int]:
    """The process's resident memory now (Linux: /proc/self/statm); elsewhere its peak (getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        try:
            import resource
            import sys

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KB on Linux
        except (ImportError, OSError):
            return None


def _available_bytes() -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


class SystemSampler:
    """CPU use between two samples (process CPU seconds per wall second, ×100: 200 % is two cores busy)."""

    def __init__(self):
        self.wall, self.cpu = time.monotonic(), self._cpu()

    @staticmethod
    def _cpu() -> float:
        t = os.times()
        return t.user + t.system  # children included would count DataLoader workers twice over time

    def sample(self, gpu: bool = False) -> Dict[str, float]:
        wall, cpu = time.monotonic(), self._cpu()
        metrics: Dict[str, float] = {}
        if wall > self.wall:
            metrics["system/cpu_percent"] = round(100.0 * (cpu - self.cpu) / (wall - self.wall), 1)
        self.wall, self.cpu = wall, cpu
        rss, free = _rss_bytes(), _available_bytes()
        if rss is not None:
            metrics["system/process_memory_mb"] = round(rss / MB, 1)
        if free is not None:
            metrics["system/available_memory_mb"] = round(free / MB, 1)
        if hasattr(os, "getloadavg"):
            metrics["system/load_1min"] = round(os.getloadavg()[0], 2)
        if gpu:
            metrics.update(_gpu())
        return metrics


def _gpu() -> Dict[str, float]:
    import torch

    metrics: Dict[str, float] = {}
    for i in range(torch.cuda.device_count()):
        metrics[f"system/gpu{i}_memory_mb"] = round(torch.cuda.memory_reserved(i) / MB, 1)
        metrics[f"system/gpu{i}_memory_peak_mb"] = round(torch.cuda.max_memory_allocated(i) / MB, 1)
        try:
            metrics[f"system/gpu{i}_utilization"] = float(torch.cuda.utilization(i))  # NVML (pynvml) when installed
        except Exception:
            pass
    return metrics


class SystemMetrics(L.Callback):
    """A sample at most every `every_s` seconds of training, and at each training epoch's end."""

    def __init__(self, every_s: float):
        self.every_s = every_s
        self.sampler: Optional[SystemSampler] = None
        self.gpu = False
        self.last = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self.sampler, self.last = SystemSampler(), time.monotonic()
        self.gpu = pl_module.device.type == "cuda"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if time.monotonic() - self.last >= self.every_s:
            self._log(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._log(trainer)

    def _log(self, trainer) -> None:
        self.last = time.monotonic()
        if self.sampler is None or not trainer.is_global_zero:
            return
        metrics = self.sampler.sample(self.gpu)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
