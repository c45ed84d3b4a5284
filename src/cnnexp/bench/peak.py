"""How close training comes to the machine (`peak=true`): this CPU's measured peak for a large
matrix product and a large convolution, in fp32 and bf16, and cnnexp's own training step (the
reference network and the speedrun's) in images/s and as a share of that peak.

A training step's work is counted as 3 × 2 × the shape plan's multiply-accumulates per image: one
forward pass, and a backward pass of about twice its work (the gradients of the inputs and of the
weights). Normalisation, pooling, the optimizer and Python are not counted: they are the overhead
the share shows."""

from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path
from typing import Callable, List

from cnnexp.bench.loops import lightning_run
from cnnexp.bench.runs import compose_settings, load_average


def rate(work: Callable[[], None], flops: float, windows: int = 5, seconds: float = 0.5) -> float:
    """GFLOP/s of `work` (`flops` each call): the best of `windows` windows of about `seconds`, after
    warm-up calls (a peak is what the machine can do; a busy moment only lowers a window)."""
    for _ in range(3):
        work()
    best = 0.0
    for _ in range(windows):
        calls, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            work()
            calls += 1
        best = max(best, calls * flops / elapsed / 1e9)
    return best


def matmul_peak(dtype, n: int = 2048) -> float:
    """GFLOP/s of an n×n by n×n product: what the CPU's vector units reach on the friendliest work."""
    import torch

    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    return rate(lambda: torch.mm(a, b), 2 * n ** 3)


def conv_peak(dtype, batch: int = 256, channels: int = 64, size: int = 28) -> float:
    """GFLOP/s of a 3×3, 64 → 64 channel convolution over 28×28 maps in channels_last: the layer
    shape of a small CNN, at its best."""
    import torch
    import torch.nn.functional as F

    x = torch.randn(batch, channels, size, size).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(channels, channels, 3, 3).to(dtype).contiguous(memory_format=torch.channels_last)
    return rate(lambda: F.conv2d(x, w, padding=1), 2 * batch * channels * channels * 9 * size * size)


def peak_table(args, overrides: List[str], work: Path) -> None:
    """The peaks, then each network's training step in fp32 and bf16 (median of `args.rounds`,
    at least 1, interleaved) as images/s, GFLOP/s and the share of both peaks."""
    import torch

    from cnnexp.arithmetic.geometry import total_macs
    from cnnexp.data.mnist import MNISTDataModule

    peaks = {name: {"matmul": matmul_peak(dtype), "conv": conv_peak(dtype)}
             for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    print(f"\nthis CPU's peak ({torch.get_num_threads()} threads, load average before {load_average()}), GFLOP/s: "
          + "; ".join(f"{p}: matmul 2048² {v['matmul']:,.0f}, conv 3×3 64→64 on 28×28 {v['conv']:,.0f}"
                      for p, v in peaks.items()))
    rows = []
    for name, recipe in (("reference cnn3", []), ("speedrun (model=speed)", ["experiment=speedrun"])):
        settings = compose_settings([*overrides, *recipe])
        datamodule = MNISTDataModule(settings.data, seed=settings.seed)  # the recipe's batch size and split
        datamodule.prepare_data()
        datamodule.setup("fit")
        for precision in ("fp32", "bf16"):
            s = copy.deepcopy(settings)
            s.trainer.precision = "32-true" if precision == "fp32" else "bf16-mixed"
            rows.append((name, precision, s, datamodule, 6 * total_macs(s.model.layers)))
    samples = {i: [] for i in range(len(rows))}
    for _ in range(max(1, args.rounds)):
        for i, (_, _, s, datamodule, _) in enumerate(rows):
            samples[i].append(lightning_run(s, datamodule, args.steps, args.warmup, work))
    print(f"  {'training step':<24} {'precision':<9} {'batch':>5} {'images/s':>9} {'GFLOP/s':>8} "
          f"{'of matmul peak':>15} {'of conv peak':>13}")
    for i, (name, precision, s, _, flops) in enumerate(rows):
        images = statistics.median(samples[i])
        achieved = images * flops / 1e9
        print(f"  {name:<24} {precision:<9} {s.data.batch_size:>5} {images:>9,.0f} {achieved:>8.1f} "
              f"{achieved / peaks[precision]['matmul']:>14.0%} {achieved / peaks[precision]['conv']:>13.0%}")
    print("  (a step counted as 3 × 2 × the shape plan's MACs per image: forward, and a backward of twice its work)")
