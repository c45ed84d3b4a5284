"""What the system metrics cost (`system_metrics=true`): one sample (os.times, /proc, the load), and
the check each training step makes (logging the few scalars is the loggers' usual cost)."""

from __future__ import annotations

import time


def system_metrics_table(samples: int = 2000) -> None:
    from cnnexp.callbacks.system_metrics import SystemMetrics, SystemSampler

    sampler = SystemSampler()
    start = time.perf_counter()
    for _ in range(samples):
        sampler.sample()
    sample_s = (time.perf_counter() - start) / samples
    callback = SystemMetrics(every_s=10.0)
    callback.last = time.monotonic()  # no sampler: the per-step check alone, as between samples
    start = time.perf_counter()
    for _ in range(samples * 10):
        if time.monotonic() - callback.last >= callback.every_s:
            callback.last = time.monotonic()
    check_s = (time.perf_counter() - start) / (samples * 10)
    print("system metrics (callbacks.system_metrics.every_s=10)")
    print(f"  one sample: {sample_s * 1e6:.0f} µs; the check each step: {check_s * 1e9:.0f} ns; "
          f"a sample every 10 s is {100 * sample_s / 10:.4f} % of training time")
    print()
