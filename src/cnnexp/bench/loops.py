"""The speed comparison, in this process, interleaved round by round: images/s of the reference
notebook's loop (a), a plain loop over cnnexp's in-memory tensors (b), cnnexp's own Lightning
training (c) and c in bf16-mixed (d); only their ratios count on a noisy machine."""

from __future__ import annotations

import contextlib
import copy
import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List


def timed_steps(step: Callable[[], None], steps: int, warmup: int, batch: int) -> float:
    for _ in range(warmup):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - started)


def notebook_network(settings):
    """The same layers as cnnexp's, written as the notebook writes them (ReLU not in place)."""
    import torch

    from cnnexp.models import build_network

    model = build_network(settings.model).train()
    for module in model.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    return model


# ------------------------------------------------------------------ a. the notebook's loop
def notebook_loop(settings, raw_root: Path, steps: int, warmup: int) -> float:
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    dataset = datasets.MNIST(root=str(raw_root), train=True, transform=transforms.ToTensor(), download=False)
    loader = iter(DataLoader(dataset, batch_size=settings.data.batch_size, shuffle=True, drop_last=True))
    model = notebook_network(settings)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.optimizer.lr)
    criterion = torch.nn.CrossEntropyLoss()
    avg_cost = 0
    torch.set_flush_denormal(False)  # the notebook's defaults (cnnexp's training flushes them)

    def step():
        nonlocal avg_cost
        X, Y = next(loader)
        optimizer.zero_grad()
        cost = criterion(model(X), Y)
        cost.backward()
        optimizer.step()
        avg_cost = avg_cost + cost / 429  # as the notebook does (each step's graph node stays alive)

    return timed_steps(step, steps, warmup, settings.data.batch_size)


def uncompressed_copy(data_root: str, into: Path) -> Path:
    """torchvision's MNIST reads uncompressed IDX files from root/MNIST/raw."""
    from cnnexp.data import idx

    raw = into / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in idx.FILES:
        (raw / name).write_bytes(idx.read_local(data_root, name)[1])
    return into


# ------------------------------------------------------------------ b. plain loop, in-memory tensors
def tensor_loop(settings, datamodule, steps: int, warmup: int) -> float:
    import torch
    import torch.nn.functional as F

    torch.set_flush_denormal(False)
    model = notebook_network(settings)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.optimizer.lr)
    rows = datamodule.train_rows  # the training split, copied out: a plain loop's own tensors
    x, y, b = datamodule.images[rows], datamodule.labels[rows], settings.data.batch_size
    order = torch.randperm(len(x))
    position = 0

    def step():
        nonlocal position
        idx = order[position : position + b]
        position += b
        loss = F.cross_entropy(model(datamodule.to_input(x[idx])), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return timed_steps(step, steps, warmup, b)


# ------------------------------------------------------------------ c/d. cnnexp's own training
def lightning_run(settings, datamodule, steps: int, warmup: int, workdir: Path) -> float:
    import lightning as L

    from cnnexp.core.catalogue import task_class
    from cnnexp.run.trainer import build_trainer

    class StepTimer(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == warmup:
                self.started = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == warmup + steps - 1:
                self.seconds = time.perf_counter() - self.started

    settings = copy.deepcopy(settings)
    settings.trainer.max_epochs, settings.trainer.limit_train_batches = 1, warmup + steps
    settings.trainer.limit_val_batches = 0
    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    task = task_class(settings.model.task)(settings)
    timer = StepTimer()
    trainer, _ = build_trainer(settings, run_dir, [timer])
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        trainer.fit(task, datamodule=datamodule)  # the progress bar runs, out of sight
    return steps * settings.data.batch_size / timer.seconds


# ------------------------------------------------------------------ the rounds and their ratios
def speed_table(args, settings, datamodule, raw_root: Path, work: Path) -> None:
    """`args.rounds` rounds of a, b, c, d in turn; images/s per measure and the ratios."""
    bf16 = copy.deepcopy(settings)
    bf16.trainer.precision = "bf16-mixed"
    measures = {
        "a notebook loop (DataLoader + ToTensor)": lambda: notebook_loop(settings, raw_root, args.steps, args.warmup),
        "b plain loop, in-memory tensors": lambda: tensor_loop(settings, datamodule, args.steps, args.warmup),
        "c cnnexp (Lightning, default config)": lambda: lightning_run(settings, datamodule, args.steps, args.warmup, work),
        "d cnnexp, bf16-mixed": lambda: lightning_run(bf16, datamodule, args.steps, args.warmup, work),
    }
    samples: Dict[str, List[float]] = {name: [] for name in measures}
    for r in range(args.rounds):
        for name, measure in measures.items():
            samples[name].append(measure())
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n[0]} {v[-1]:,.0f}" for n, v in samples.items()), flush=True)
    med = {name[0]: statistics.median(v) for name, v in samples.items()}
    print("\nimages/s (median of rounds)")
    for name, values in samples.items():
        print(f"  {name:<42} {statistics.median(values):>8,.0f}   ({', '.join(f'{v:,.0f}' for v in values)})")
    print(f"\nratios: c/a = {med['c'] / med['a']:.2f} (target ≥ 1.2)   c/b = {med['c'] / med['b']:.2f} (target ≥ 0.95)"
          f"   d/c = {med['d'] / med['c']:.2f} (target ≥ 1.5)")
