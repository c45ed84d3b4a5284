"""This machine's rates, measured once: the short torch benchmark behind `cnnexp.cost.estimate`'s estimates.

A few of the product's own networks (cnn3: wide, many MACs; speed: narrow, batch norm; convae:
transposed convolutions), built as a run builds them, each timed for a training step
(forward, loss, backward) and an evaluation batch, in every mode a run can use — precision ×
memory layout — on each device there is, round by round (the fastest round counts). A batch of
two images gives the cost of a batch itself; a least-squares fit (no negative rates) of the rest
gives the seconds per MAC and per value (cost/estimate.py has the formula); Adam's update is timed on its
own, per parameter. Lightning's own work per training step (its hooks, the logged values,
the progress bar) is not in a plain loop: FRAMEWORK_BATCH_S allows for it. The whole measurement
takes a few seconds; `estimate.write_calibration` caches it.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Dict, List, Optional, Tuple

from cnnexp.arithmetic.geometry import total_macs
from cnnexp.config.compose import conf_model
from cnnexp.config.validate import MNIST_CLASSES
from cnnexp.core.catalogue import TASKS
from cnnexp.cost.estimate import read_calibration, values_per_image, write_calibration
from cnnexp.data.idx import IMAGE_SHAPE

log = logging.getLogger("cnnexp")

# (network, training batch, evaluation batch): the probes. Small batches: the whole measurement
# takes seconds. The last, of two images, is the cost of a batch itself (its images cost ~nothing).
PROBES: List[Tuple[str, int, int]] = [("cnn3", 64, 128), ("speed", 128, 256), ("convae", 64, 128), ("speed", 2, 2)]
ROUNDS = 2  # each probe once per round, after one untimed call; the fastest round counts: the machine, not its load
FRAMEWORK_BATCH_S = 0.007  # Lightning's per-step work beyond a plain loop (hooks, logging, progress bar): the bench's residual, 5–9 ms a step on 2 CPU cores


def _model(name: str):
    """A probe network on MNIST's images and classes, built as a run builds it."""
    return conf_model(name, IMAGE_SHAPE, len(MNIST_CLASSES))


def _modes(device: str) -> List[Tuple[str, object]]:
    import torch

    precisions = [("fp32", None), ("bf16", torch.bfloat16)] + ([("fp16", torch.float16)] if device == "cuda" else [])
    return [(f"{name}-{layout}", dtype) for name, dtype in precisions for layout in ("nchw", "cl")]


def _seconds(fn, device: str) -> float:
    import torch

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    started = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - started


def _fit(per_batch: float, work: List[Tuple[int, float, float]], seconds: List[float]) -> Dict[str, float]:
    """seconds − per_batch ≈ B·(per_mac·MACs + per_value·values), least squares over the probes
    with no negative rate (two unknowns: a single slow probe moves them little)."""
    import numpy as np

    A = np.array([[b * m, b * v] for b, m, v in work], dtype=float)
    y = np.array([max(t - per_batch, 0.0) for t in seconds])
    scale = A.max(axis=0)
    coef = np.linalg.lstsq(A / scale, y, rcond=None)[0] / scale
    if (coef < 0).any():  # one rate alone, the one that fits better
        fits = [(float(np.sum((A[:, i] * (c := max(float(A[:, i] @ y / (A[:, i] @ A[:, i])), 0.0)) - y) ** 2)), i, c)
                for i in range(2)]
        _, i, c = min(fits)
        coef = np.zeros(2)
        coef[i] = c
    return {"per_batch": per_batch, "per_mac": float(coef[0]), "per_value": float(coef[1])}


def _adam_per_param(device: str, rounds: int) -> float:
    """Adam's fused update, per parameter (bf16 autocast keeps fp32 weights: one rate for all modes)."""
    import torch

    weights = [torch.zeros(1 << 20, device=device, requires_grad=True)]
    weights[0].grad = torch.ones_like(weights[0])
    adam = torch.optim.Adam(weights, lr=1e-3, fused=device in ("cpu", "cuda"))
    adam.step()
    return min(_seconds(adam.step, device) for _ in range(rounds)) / weights[0].numel()


def _probe_calls(device: str, models: Dict, probes) -> Dict[Tuple[str, int, str], object]:
    """(mode, probe index, stage) → the call to time: a training step and an evaluation batch of
    each probe network on MNIST-shaped images, in each mode."""
    import torch
    import torch.nn.functional as F

    from cnnexp.models import build_network

    calls = {}
    for mode, dtype in _modes(device):
        layout = torch.channels_last if mode.endswith("-cl") else torch.contiguous_format
        for i, (name, batch, eval_batch) in enumerate(probes):
            model = models[name]
            net = build_network(model).to(device).to(memory_format=layout)
            x = torch.randn(batch, *IMAGE_SHAPE, device=device).to(memory_format=layout)
            y = torch.randint(0, len(MNIST_CLASSES), (batch,), device=device)
            xe = torch.randn(eval_batch, *IMAGE_SHAPE, device=device).to(memory_format=layout)

            # a task that names classes is scored against labels; the others against their input
            def train_step(net=net, x=x, y=y, dtype=dtype, reconstruct=not TASKS[model.task].classifies):
                net.train()
                with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
                    out = net(x)
                    loss = F.mse_loss(out.float(), x) if reconstruct else F.cross_entropy(out.float(), y)
                loss.backward()
                net.zero_grad(set_to_none=True)

            def eval_step(net=net, xe=xe, dtype=dtype):
                net.eval()
                with torch.no_grad(), torch.autocast(device, dtype=dtype, enabled=dtype is not None):
                    net(xe)

            calls[mode, i, "train"], calls[mode, i, "eval"] = train_step, eval_step
    return calls


def measure_device(device: str, probes=PROBES, rounds: int = ROUNDS) -> Dict[str, Dict[str, Dict[str, float]]]:
    import torch

    torch.manual_seed(0)
    models = {name: _model(name) for name, _, _ in probes}
    per_param = _adam_per_param(device, rounds)
    calls = _probe_calls(device, models, probes)
    for call in calls.values():  # untimed: oneDNN builds its kernels for each shape on the first call
        call()
    fastest = {key: float("inf") for key in calls}
    for _ in range(rounds):  # round by round: a burst of another process's load spoils one round, not all
        for key, call in calls.items():
            fastest[key] = min(fastest[key], _seconds(call, device))
    work = {name: (total_macs(m.layers), values_per_image(m.layers)) for name, m in models.items()}
    sized = {"train": [(batch, *work[name]) for name, batch, _ in probes[:-1]],
             "eval": [(eval_batch, *work[name]) for name, _, eval_batch in probes[:-1]]}
    small = len(probes) - 1
    results = {}
    for mode, _ in _modes(device):
        stages = {}
        for stage in ("train", "eval"):
            seconds = [fastest[mode, i, stage] for i in range(small)]
            stages[stage] = _fit(fastest[mode, small, stage], sized[stage], seconds)
        stages["train"]["per_batch"] += FRAMEWORK_BATCH_S
        stages["train"]["per_param"] = per_param
        results[mode] = stages
    return results


def devices() -> List[str]:
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.append("mps")
    return found


def for_estimates() -> Optional[Dict]:
    """The calibration a run or a sweep estimates with: the cached one (read without torch), else
    measured now — the first time on this machine, or again when the cached one was measured busy
    and the machine is now quiet. None, with a warning, where it cannot be measured."""
    cached = read_calibration()
    if cached is not None and not (cached.get("busy") and os.getloadavg()[0] <= (os.cpu_count() or 1) / 2):
        return cached
    try:
        return calibrate(force=True)
    except Exception as e:  # an estimate never stops a run or a sweep
        log.warning("no cost estimate: this machine could not be calibrated (%s)", e)
        return None


def calibrate(force: bool = False, probes=PROBES, rounds: int = ROUNDS) -> Dict:
    """This machine's calibration: the cached one, unless there is none for this machine (or
    force), then measured and cached. (Tests measure fewer, smaller probes.)"""
    cached = None if force else read_calibration()
    if cached is not None:
        return cached
    import torch

    log.info("measuring this machine's speed once for the cost estimates (a few seconds; cached)")
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > cores:  # other processes' work slows the measurement, and the estimates: say so
        log.warning("the machine is busy (load %.1f on %d cores): the estimates will be too long; measure again "
                    "when it is quiet: python -m cnnexp.shapes calibrate=true", load, cores)
    started = time.perf_counter()
    threads = torch.get_num_threads()
    try:
        measured = {device: measure_device(device, probes, rounds) for device in devices()}
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - started
    path = write_calibration(measured, seconds, busy=load > cores, load=load)
    log.info("calibrated in %.1f s: %s", seconds, path)
    return read_calibration(path)
