"""This machine's rates, measured once: the short torch benchmark behind `cnnexp.cost`'s estimates.

A few of the product's own networks (cnn3: wide, many MACs; speed: narrow, batch norm; convae:
transposed convolutions), built as a run builds them, each timed for a few training steps
(forward, loss, backward) and evaluation batches, in every mode a run can use — precision ×
memory layout — on each device there is. A least-squares fit (no negative rates) turns the times
into seconds per batch, per MAC and per value (cost.py has the formula); Adam's update is timed
on its own, per parameter. Lightning's own work per training step (its hooks, the logged values,
the progress bar) is not in a plain loop: FRAMEWORK_BATCH_S allows for it. The whole measurement
takes a few seconds; `cost.write_calibration` caches it.
"""

from __future__ import annotations

import logging
import time
from typing import Dict, List, Tuple

from omegaconf import OmegaConf

from cnnexp import CONF_DIR
from cnnexp.cost import read_calibration, values_per_image, write_calibration
from cnnexp.models.geometry import total_macs

log = logging.getLogger("cnnexp")

# (network, batch): the training probes, and their evaluation batches; the small last one tells the
# cost of a batch from the cost of its images. Small batches: the whole measurement takes seconds.
PROBES: List[Tuple[str, int]] = [("cnn3", 64), ("speed", 128), ("convae", 64), ("speed", 16)]
EVAL_BATCHES = (128, 256, 128, 32)
STEPS, WARMUP = 2, 1  # the faster of STEPS after WARMUP: the machine's rate, not its load's
FRAMEWORK_BATCH_S = 0.002  # Lightning's per-step work beyond a plain loop (hooks, logging, progress bar)


def _model(name: str):
    from cnnexp.settings import ModelSettings

    recorded = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml"))
    recorded.update(input_shape=[1, 28, 28], num_classes=10)
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelSettings), recorded))


def _modes(device: str) -> List[Tuple[str, object]]:
    import torch

    precisions = [("fp32", None), ("bf16", torch.bfloat16)] + ([("fp16", torch.float16)] if device == "cuda" else [])
    return [(f"{name}-{layout}", dtype) for name, dtype in precisions for layout in ("nchw", "cl")]


def _fastest_seconds(fn, device: str, steps: int = STEPS, warmup: int = WARMUP) -> float:
    import torch

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = []
    for i in range(warmup + steps):
        sync()
        started = time.perf_counter()
        fn()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - started)
    return min(times)


def _fit(rows: List[Tuple[float, float, float]], seconds: List[float]) -> Dict[str, float]:
    """seconds ≈ per_batch + per_mac·x1 + per_value·x2, least squares with no negative term."""
    import numpy as np

    names = ["per_batch", "per_mac", "per_value"]
    A, b = np.array(rows, dtype=float), np.array(seconds, dtype=float)
    active = list(range(3))
    while True:
        scale = A[:, active].max(axis=0)
        coef = np.linalg.lstsq(A[:, active] / scale, b, rcond=None)[0] / scale
        if (coef >= 0).all() or len(active) == 1:
            break
        active.pop(int(np.argmin(coef)))
    rates = dict.fromkeys(names, 0.0)
    for i, c in zip(active, coef):
        rates[names[i]] = max(float(c), 0.0)
    return rates


def measure_device(device: str, probes=PROBES, eval_batches=EVAL_BATCHES) -> Dict[str, Dict[str, Dict[str, float]]]:
    import torch
    import torch.nn.functional as F

    from cnnexp.models import build_network

    torch.manual_seed(0)
    nets = {name: _model(name) for name in dict(probes)}
    work = {name: (total_macs(m.layers), values_per_image(m.layers)) for name, m in nets.items()}
    # Adam's fused update, per parameter (bf16 autocast keeps fp32 weights: one rate for all modes)
    weights = [torch.zeros(1 << 20, device=device, requires_grad=True)]
    weights[0].grad = torch.ones_like(weights[0])
    adam = torch.optim.Adam(weights, lr=1e-3, fused=device in ("cpu", "cuda"))
    per_param = _fastest_seconds(adam.step, device) / weights[0].numel()
    results = {}
    for mode, dtype in _modes(device):
        layout = torch.channels_last if mode.endswith("-cl") else torch.contiguous_format
        train_rows, train_s, eval_rows, eval_s = [], [], [], []
        for (name, batch), eval_batch in zip(probes, eval_batches):
            model = nets[name]
            net = build_network(model).to(device).to(memory_format=layout)
            reconstruct = model.task == "reconstruction"

            def batch_of(n):
                return torch.randn(n, 1, 28, 28, device=device).to(memory_format=layout)

            x, y = batch_of(batch), torch.randint(0, 10, (batch,), device=device)

            def train_step():
                with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
                    out = net(x)
                    loss = F.mse_loss(out.float(), x) if reconstruct else F.cross_entropy(out.float(), y)
                loss.backward()
                net.zero_grad(set_to_none=True)

            xe = batch_of(eval_batch)

            def eval_batch_fn():
                with torch.no_grad(), torch.autocast(device, dtype=dtype, enabled=dtype is not None):
                    net(xe)

            macs, values = work[name]
            net.train()
            train_rows.append((1.0, batch * macs, batch * values))
            train_s.append(_fastest_seconds(train_step, device))
            net.eval()
            eval_rows.append((1.0, eval_batch * macs, eval_batch * values))
            eval_s.append(_fastest_seconds(eval_batch_fn, device))
        train = _fit(train_rows, train_s)
        train["per_batch"] += FRAMEWORK_BATCH_S
        train["per_param"] = per_param
        results[mode] = {"train": train, "eval": _fit(eval_rows, eval_s)}
    return results


def devices() -> List[str]:
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.append("mps")
    return found


def calibrate(force: bool = False, probes=PROBES, eval_batches=EVAL_BATCHES) -> Dict:
    """This machine's calibration: the cached one, unless there is none for this machine (or
    force), then measured and cached. (Tests measure fewer, smaller probes.)"""
    import torch

    cached = None if force else read_calibration()
    if cached is not None:
        return cached
    log.info("measuring this machine's speed once for the cost estimates (a few seconds; cached)")
    started = time.perf_counter()
    threads = torch.get_num_threads()
    try:
        measured = {device: measure_device(device, probes, eval_batches) for device in devices()}
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - started
    path = write_calibration(measured, seconds)
    log.info("calibrated in %.1f s: %s", seconds, path)
    return read_calibration(path)
