"""`python -m cnnexp.bench`: training speed of the reference CNN, measured against baselines in
the same process, interleaved round by round (this machine is noisy: only ratios count).

    a  the reference notebook's loop: torchvision MNIST + ToTensor + DataLoader, plain PyTorch
    b  a plain PyTorch loop over the in-memory tensors cnnexp's data module holds
    c  cnnexp's own training: Lightning, default config, logging and progress bar on
    d  c with trainer.precision=bf16-mixed

then the startup time (launch → first training step) and peak memory, side by side with
lightning-hydra-template when `peer=` names a checkout of it; a small sweep run sequentially and
with hydra/launcher=parallel, and where its jobs' time goes; a search whose trials differ in length,
in batches and in steady state (search_modes=true); the cost estimate printed before a run
against the epochs it then takes (estimate=true); and (accuracy=true) training time to 99.2 %
test accuracy per recipe over `seeds`. ablate=true measures only the ablation of a recipe
(`ABLATIONS`): the recipe, then each trick taken away (or a dropped one put back) in turn, each a
`python -m cnnexp.train` per seed, interleaved seed by seed. Options are key=value; other
key=value pairs override the config:

    python -m cnnexp.bench data.root=../shared/datasets rounds=3 accuracy=false
    python -m cnnexp.bench data.root=../shared/datasets rounds=0 sweep=false accuracy=false peer=../lightning-hydra-template
    python -m cnnexp.bench data.root=../shared/datasets rounds=0 startup=false sweep=false accuracy=false estimate=true
    python -m cnnexp.bench data.root=../shared/datasets recipes=speedrun ablate=true seeds=10
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Dict, List


@dataclass
class BenchArgs:
    rounds: int = 3          # interleaved rounds of a, b, c, d
    steps: int = 50          # timed training steps per measurement (batch 128)
    warmup: int = 5          # untimed steps first
    startup: bool = True     # launch → first training step
    sweep: bool = True       # 4-run sweep: sequential vs hydra/launcher=parallel
    accuracy: bool = True    # time to 99.2 % test accuracy per recipe, over seeds (default: ~5 min a seed)
    seeds: int = 1           # replicates per recipe: mean ± sd over seeds 1..N
    recipes: str = "default,fast,speedrun"  # experiments timed to the target (default: conf/ as it is)
    target: float = 0.992    # the test accuracy the accuracy part trains to
    peer: str = ""           # a lightning-hydra-template checkout: its startup and memory measured beside ours
    search_modes: bool = False  # a search of trials of 1 or 4 epochs: batches of n_jobs vs steady state
    estimate: bool = False   # the cost estimate (cnnexp.cost) against measured epochs, for ESTIMATED
    epochs: int = 2          # epochs per run in the estimate part (the median epoch is compared)
    ablate: bool = False     # only this: each recipe's tricks changed one at a time, over `seeds` (python -m cnnexp.train)


# ------------------------------------------------------------------ helpers
def compose_settings(overrides: List[str]):
    """The checked settings of conf/ with these overrides."""
    from cnnexp.config.compose import compose_config
    from cnnexp.config.settings import load

    return load(compose_config(overrides))


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

    from cnnexp.run.trainer import build_trainer
    from cnnexp.core.catalogue import task_class

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


# ------------------------------------------------------------------ startup and sweeps (subprocesses)
PEAK_MB: Dict[str, float] = {}  # the last command's peak resident memory


# Linux carries a process's peak memory across exec, so a child forked from this (large) process
# would report at least this process's size: a small launcher forks the command and reports its peak.
PEAK_OF_CHILD = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[2:]); _, status, usage = os.wait4(p.pid, 0); "
                 "open(sys.argv[1], 'w').write(str(usage.ru_maxrss)); sys.exit(os.waitstatus_to_exitcode(status))")


def launch(command: List[str], cwd: Path, env: Dict[str, str] | None = None, memory: bool = True) -> tuple[int, float]:
    """A command as a user runs it: exit code and wall seconds; its peak resident memory goes to
    PEAK_MB["last"] (memory=False: started directly, for start-up times)."""
    with tempfile.TemporaryDirectory() as tmp:
        peak = Path(tmp) / "peak_kb"
        started = time.perf_counter()
        rc = subprocess.run([sys.executable, "-c", PEAK_OF_CHILD, str(peak), *command] if memory else command,
                            cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        seconds = time.perf_counter() - started
        PEAK_MB["last"] = int(peak.read_text()) / 1024 if peak.exists() else float("nan")
    return rc, seconds


def cli(args: List[str], cwd: Path, memory: bool = True) -> tuple[int, float]:
    """`python -m cnnexp.train args`."""
    return launch([sys.executable, "-m", "cnnexp.train", *args], cwd, memory=memory)


def startup_seconds(overrides: List[str], workdir: Path) -> float:
    out = Path(tempfile.mkdtemp(dir=workdir))
    launched = time.time()
    rc, _ = cli([*overrides, "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=0",
                 "callbacks.checkpoint.monitor=train/loss",  # no validation: nothing to pick a val/acc best by
                 "test_after_fit=false", "callbacks.progress_bar_refresh=0", f"paths.output_dir={out}"], workdir, memory=False)
    results = json.loads(next(out.glob("*/*/results.json")).read_text())
    return results["first_step_unix"] - launched


def memory_mb(overrides: List[str], workdir: Path) -> float:
    """Peak resident memory of a 2-epoch default run (no test: the peer's test stage cannot load its
    own checkpoint under torch ≥ 2.6, so neither side tests)."""
    rc, _ = cli([*overrides, "trainer.max_epochs=2", "test_after_fit=false", "callbacks.progress_bar_refresh=0",
                 f"paths.output_dir={tempfile.mkdtemp(dir=workdir)}"], workdir)
    return PEAK_MB["last"] if rc == 0 else float("nan")


# ------------------------------------------------------------------ the peer: lightning-hydra-template
def first_step_marker(path: str):
    """A callback for the peer's trainer (+callbacks.first_step._target_=cnnexp.bench.first_step_marker):
    writes the wall clock of its first training step, as cnnexp's results.json records its own."""
    import lightning as L

    class FirstStep(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if not os.path.exists(path):
                Path(path).write_text(repr(time.time()))

    return FirstStep()


def peer_run(peer: Path, data_dir: Path, workdir: Path, args: List[str], startup: bool = False) -> tuple[int, float]:
    """`python src/train.py args` in a lightning-hydra-template checkout, its MNIST where ours is;
    returns exit code and launch → first training step (nan if it never trained)."""
    marker = Path(tempfile.mkdtemp(dir=workdir)) / "first_step"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(Path(__file__).parents[2])]))}
    launched = time.time()
    rc, _ = launch([sys.executable, "src/train.py", f"data.data_dir={data_dir}", f"paths.log_dir={workdir / 'peer-logs'}",
                    "test=False", "+callbacks.first_step._target_=cnnexp.bench.first_step_marker",
                    f"+callbacks.first_step.path={marker}", *args], peer, env, memory=not startup)
    return rc, float(marker.read_text()) - launched if marker.exists() else float("nan")


def startup_table(args: "BenchArgs", overrides: List[str], work: Path, data_dir: Path) -> None:
    """Launch → first training step (median of 3, interleaved) and peak memory, cnnexp and the peer;
    beside the peer both read the same uncompressed IDX files (a .gz costs cnnexp 0.15 s to unzip)."""
    peer = Path(args.peer).expanduser().resolve() if args.peer else None
    if peer:
        overrides = [o for o in overrides if not o.startswith("data.root=")] + [f"data.root={data_dir}"]
    ours, theirs = [], []
    for _ in range(3):
        ours.append(startup_seconds(overrides, work))
        if peer:
            # its defaults up to the first step: config tree, model summary, two sanity-validation batches
            theirs.append(peer_run(peer, data_dir, work, ["trainer.max_epochs=1", "+trainer.limit_train_batches=2"],
                                   startup=True)[1])
    print(f"startup, launch → first training step (median of 3): cnnexp {statistics.median(ours):.2f} s "
          f"({', '.join(f'{v:.2f}' for v in ours)})")
    print(f"peak memory of a 2-epoch default run: cnnexp {memory_mb(overrides, work):,.0f} MB")
    if peer:
        rc, _ = peer_run(peer, data_dir, work, ["trainer.max_epochs=2"])
        print(f"  peer lightning-hydra-template ({peer.name}): startup {statistics.median(theirs):.2f} s "
              f"({', '.join(f'{v:.2f}' for v in theirs)}), peak memory {PEAK_MB['last']:,.0f} MB (exit {rc})")


def sweep_seconds(overrides: List[str], folder: Path, extra: List[str] = ()) -> float:
    """Wall seconds of a 4-run sweep of 60-batch jobs into `folder`."""
    grid = ["-m", "model.kernel_size=3,5", "model.pool=max,avg"]
    rc, seconds = cli([*grid, *extra, *overrides, "trainer.max_epochs=1", "trainer.limit_train_batches=60",
                       "callbacks.progress_bar_refresh=0", f"paths.output_dir={folder}"], folder.parent)
    if rc != 0:
        raise RuntimeError(f"the sweep {' '.join(extra)} failed (exit {rc})")
    return seconds


# The evaluation of a job as it was before issue #18 (batches of 1,000, NCHW), for the split's "before".
EVAL_BEFORE = ["data.eval_batch_size=1000", "performance.channels_last=false"]
PARTS = {"data_s": "data", "train_steps_s": "train steps", "validation_s": "validation", "test_s": "test",
         "views_s": "views", "checkpoints_s": "checkpoints"}


def sweep_split(folder: Path, wall: float) -> Dict[str, float]:
    """Seconds per job of a sequential sweep, by part, from each run's results.json; what the
    sweep's wall time holds beyond its jobs is shared out as the launch share."""
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("multirun/*/*/*/results.json"))]
    split = {name: statistics.mean(r["timing"][k] for r in records) for k, name in PARTS.items()}
    job = statistics.mean(r["seconds"] for r in records)
    split["other in job"] = job - sum(split.values())                  # trainer, loggers, HParams
    split["launch share"] = wall / len(records) - job                  # process start, imports, sweep set-up
    return split


def split_table(columns: Dict[str, Dict[str, float]]) -> str:
    lines = ["per job of a sequential 4-run sweep (60 batches, full validation and test): seconds (share of the job)",
             f"    {'':<14}" + "".join(f"{name:>28}" for name in columns)]
    for part in next(iter(columns.values())):
        lines.append(f"    {part:<14}" + "".join(f"{split[part]:>19.2f} ({100 * split[part] / sum(split.values()):4.1f} %)"
                                                for split in columns.values()))
    outside = [100 * (1 - split["train steps"] / sum(split.values())) for split in columns.values()]
    lines.append(f"    {'outside steps':<14}" + "".join(f"{f'{v:.0f} %':>28}" for v in outside)
                 + "   outside training steps (target ≤ 25 %)")
    return "\n".join(lines)


# A search whose trials differ in length (1 or 4 epochs), two at a time through hydra/launcher=parallel.
SEARCH = ["-m", "hydra/sweeper=optuna", "hydra/launcher=parallel", "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=8",
          "hydra.sweeper.sampler=random", "hydra.sweeper.seed=3", "trainer.max_epochs=choice(1,4)",
          "optimizer.lr=tag(log,interval(1e-4,1e-2))", "trainer.limit_train_batches=30"]


def search_modes(overrides: List[str], work: Path) -> Dict[str, tuple]:
    """The same search (same seeded draws) launched in batches, each waited for, and in steady
    state: cnnexp.sweeps.search.slot_use of each."""
    from cnnexp.search.study import load_study, slot_use

    measured = {}
    for mode, steady in (("batches of n_jobs", "false"), ("steady state", "true")):
        folder = work / f"search-{steady}"
        rc, _ = cli([*SEARCH, f"hydra.sweeper.steady={steady}", *overrides, "callbacks.progress_bar_refresh=0",
                     f"paths.output_dir={folder}"], work, memory=False)
        if rc != 0:
            raise RuntimeError(f"the search with hydra.sweeper.steady={steady} failed (exit {rc})")
        measured[mode] = slot_use(load_study(next(folder.glob("multirun/*/*"))).get_trials(), 2)
    return measured


# ------------------------------------------------------------------ the cost estimate against the clock
ESTIMATED = {  # name → overrides: the networks the estimate is held to (±30 %)
    "cnn3": [],
    "speedrun": ["experiment=speedrun"],
    "convae": ["model=convae"],
    "k5 s2 same": ["model.kernel_size=5", "model.stride=2", "model.padding=same"],
}


def estimate_table(args: "BenchArgs", overrides: List[str], work: Path) -> None:
    """Calibrate afresh, then for each of ESTIMATED: the estimate the run prints, and the epochs
    it then takes (time/epoch_s in metrics.csv: training and validation), as a user runs it."""
    import csv

    from cnnexp.cost import estimate as cost
    from cnnexp.cost.calibration import calibrate

    started = time.perf_counter()
    calibration = calibrate(force=True)
    print(f"\ncost estimate against measurement ({args.epochs} epochs each, no test; load {_load()}); "
          f"calibrated afresh in {time.perf_counter() - started:.1f} s")
    print(f"  {'network':<12} {'mode':<10} {'estimated s/epoch':>18} {'measured s/epoch':>17} "
          f"{'measured/estimated':>19}   epochs measured")
    for name, extra in ESTIMATED.items():
        run = [*overrides, *extra, f"trainer.max_epochs={args.epochs}", "test_after_fit=false"]
        estimate = cost.estimate(compose_settings(run), calibration)
        out = Path(tempfile.mkdtemp(dir=work))
        rc, _ = cli([*run, "callbacks.progress_bar_refresh=0", f"paths.output_dir={out}"], work, memory=False)
        rows = list(csv.DictReader(next(out.glob("*/*/metrics.csv")).open())) if rc == 0 else []
        epochs = [float(r["time/epoch_s"]) for r in rows]
        measured = statistics.median(epochs) if epochs else float("nan")
        print(f"  {name:<12} {estimate.mode:<10} {estimate.epoch_s:>18.1f} {measured:>17.1f} "
              f"{measured / estimate.epoch_s:>19.2f}   {', '.join(f'{e:.1f}' for e in epochs) or f'failed (exit {rc})'}",
              flush=True)
    print(f"  (load {_load()})")


# ------------------------------------------------------------------ time to accuracy
RECIPES = {"default": [], "fast": ["experiment=fast"], "speedrun": ["experiment=speedrun"]}


def time_to_accuracy(settings, target: float, workdir: Path) -> Dict[str, float]:
    """Train a recipe to its end, seeded; after each epoch test the weights (untimed) and note when
    test accuracy first reaches the target. Returns seconds to target, total seconds, final test accuracy."""
    import lightning as L
    import torch

    from cnnexp.data.mnist import MNISTDataModule
    from cnnexp.run.trainer import build_trainer
    from cnnexp.core.catalogue import task_class

    L.seed_everything(settings.seed, workers=True, verbose=False)
    datamodule = MNISTDataModule(settings.data, seed=settings.seed)
    datamodule.prepare_data()
    datamodule.setup("fit")

    class Clock(L.Callback):
        def __init__(self):
            self.paused, self.reached, self.accuracies = 0.0, None, []

        def on_fit_start(self, trainer, pl_module):
            self.started = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            pause = time.perf_counter()
            pl_module.eval()
            correct = 0
            device = pl_module.device  # the accelerator the trainer picked (accelerator=auto: a GPU if there is one)
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled="bf16" in settings.trainer.precision):
                for i in range(0, len(datamodule.test_x), 1000):
                    logits = pl_module(datamodule.to_input(datamodule.test_x[i : i + 1000].to(device)))
                    correct += (logits.argmax(1).cpu() == datamodule.test_y[i : i + 1000]).sum().item()
            pl_module.train()
            accuracy = correct / len(datamodule.test_x)
            self.accuracies.append(accuracy)
            self.paused += time.perf_counter() - pause
            if self.reached is None and accuracy >= target:
                self.reached = time.perf_counter() - self.started - self.paused

        def on_fit_end(self, trainer, pl_module):
            self.total = time.perf_counter() - self.started - self.paused

    clock = Clock()
    task = task_class(settings.model.task)(settings)
    trainer, _ = build_trainer(settings, Path(tempfile.mkdtemp(dir=workdir)), [clock])
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        trainer.fit(task, datamodule=datamodule)
    return {"to_target_s": clock.reached, "total_s": clock.total, "final_test_acc": clock.accuracies[-1],
            "best_test_acc": max(clock.accuracies), "epochs": len(clock.accuracies)}


# A recipe's variants: each trick it keeps taken away, and each it was measured with and dropped
# (the recipe's YAML says what it keeps); "before" takes them all away.
VIEWS_ON = [f"callbacks.views.{v}=true" for v in ("text", "filters", "feature_maps", "receptive_field", "arithmetic",
                                                  "mistakes", "confusion_matrix")]
SPEEDRUN_TRICKS = {
    "without pool before norm": ["model.pool_first=false"],
    "without zero class layer": ["model.head.init=xavier"],
    "without shifted test views": ["tta.shift=0"],
    "without close calls only (every image shifted)": ["tta.margin=1.0"],
    "without Adam betas (0.8, 0.95)": ["optimizer.betas=[0.9,0.999]"],
    "without 1 epoch at 4e-2 (2 full at 3e-2)": ["trainer.limit_train_batches=1.0", "scheduler.max_lr=3e-2"],
    "without validating once": ["trainer.check_val_every_n_epoch=1"],
    "without views off": VIEWS_ON,
}
ABLATIONS = {"speedrun": {
    "before #29 (all of them off)": [o for removed in SPEEDRUN_TRICKS.values() for o in removed],
    **SPEEDRUN_TRICKS,
    "with lookahead weights": ["lookahead.every=5", "lookahead.decay=0.8"],
    "with 1.5 epochs at 3e-2": ["trainer.limit_train_batches=0.75", "scheduler.max_lr=3e-2"],
}}


def whole_process(overrides: List[str], workdir: Path) -> Dict[str, float]:
    """One `python -m cnnexp.train` of a recipe as a user runs it: wall time, and what it recorded."""
    out = Path(tempfile.mkdtemp(dir=workdir))
    rc, seconds = cli([*overrides, "callbacks.progress_bar_refresh=0", f"paths.output_dir={out}"], workdir)
    results = json.loads(next(out.glob("*/*/results.json")).read_text()) if rc == 0 else {}
    return {"wall_s": seconds, "train_s": results.get("train_s"), "test_acc": results.get("test_acc"),
            "peak_mb": PEAK_MB["last"], "time_to": results.get("time_to") or {}}


def spread(values: List[float], scale: float = 1.0, digits: int = 1) -> str:
    """mean ± standard deviation (n)."""
    if not values:
        return "—"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{scale * statistics.mean(values):.{digits}f} ± {scale * sd:.{digits}f} (n={len(values)})"


def recipe_table(args: "BenchArgs", overrides: List[str], work: Path) -> None:
    """Per recipe and seed: the in-process loop that tests after each epoch (when the target was
    first reached), then the recipe as a user runs it, one `python -m cnnexp.train` (what it records)."""
    loops: Dict[str, List[Dict[str, float]]] = {}
    processes: Dict[str, List[Dict[str, float]]] = {}
    for name in args.recipes.split(","):
        print(f"\n{name}, seeds 1–{args.seeds}; load average before {_load()}", flush=True)
        processes[name] = []
        for seed in range(1, args.seeds + 1):  # the processes first: none starts beside this one's idle torch threads
            processes[name].append(whole_process([*overrides, *RECIPES[name], f"seed={seed}"], work))
            one = processes[name][-1]
            print(f"  seed {seed:>2}: train_s {one['train_s'] or float('nan'):.2f}, test {100 * (one['test_acc'] or float('nan')):.2f} %, "
                  f"whole process {one['wall_s']:.1f} s", flush=True)
        print(f"load average after {_load()}")
        loops[name] = [time_to_accuracy(compose_settings([*overrides, *RECIPES[name], f"seed={seed}"]), args.target, work)
                       for seed in range(1, args.seeds + 1)]
    print(f"\ntime to {100 * args.target:.1f} % test accuracy, seeds 1–{args.seeds} (in-process loop: the test set "
          "checked after each epoch, untimed, plain forward without the recipe's test-time views; mean ± sd):")
    print(f"  {'recipe':<10} {'training s to target':>24} {'final test acc %':>24} {'reached':>8} {'whole fit s':>22}")
    for name, runs in loops.items():
        reached = [r["to_target_s"] for r in runs if r["to_target_s"] is not None]
        print(f"  {name:<10} {spread(reached):>24} {spread([r['final_test_acc'] for r in runs], 100, 2):>24} "
              f"{f'{len(reached)}/{len(runs)}':>8} {spread([r['total_s'] for r in runs]):>22}")
    print(f"\neach recipe as a user runs it: `python -m cnnexp.train experiment=<recipe> seed=N` for seeds 1–{args.seeds}, "
          "what its results.json records (mean ± sd); time_to: training s at which validation first reached "
          "99.0 / 99.2 / 99.4 % (runs that reached it)")
    print(f"  {'recipe':<10} {'train_s':>22} {'test acc %':>24} {'min %':>6} {'whole process s':>22} {'peak MB':>8}   time_to")
    for name, rs in processes.items():
        ok = [r for r in rs if r["test_acc"] is not None]
        time_to = " / ".join(f"{spread([r['time_to'][k] for r in ok if r['time_to'].get(k) is not None])}"
                             for k in ("99.0", "99.2", "99.4"))  # results.json's, from callbacks/timing.py
        print(f"  {name:<10} {process_columns(rs)} {max((r['peak_mb'] for r in ok), default=0):>8,.0f}   {time_to}")


def process_columns(rs: List[Dict[str, float]]) -> str:
    """train_s, test accuracy, the lowest seed's and whole-process seconds over whole_process runs."""
    ok = [r for r in rs if r["test_acc"] is not None]
    accs = [r["test_acc"] for r in ok]
    return (f"{spread([r['train_s'] for r in ok], digits=2):>22} {spread(accs, 100, 2):>24} "
            f"{100 * min(accs) if accs else float('nan'):>6.2f} {spread([r['wall_s'] for r in ok]):>22}"
            + ("" if len(ok) == len(rs) else f"   {len(rs) - len(ok)} failed"))


def ablation_table(args: "BenchArgs", overrides: List[str], work: Path) -> None:
    """Each recipe with ablations: itself, then each trick removed, one `python -m cnnexp.train` per
    seed and variant, interleaved seed by seed (the machine's load drifts alike for all)."""
    for name in args.recipes.split(","):
        given = {o.split("=", 1)[0] for o in overrides}  # the user's own overrides win over a removal
        variants = {f"{name} (as it is)": [], **{f"  {change}": [o for o in removed if o.split("=", 1)[0] not in given]
                                                 for change, removed in ABLATIONS.get(name, {}).items()}}
        runs: Dict[str, List[Dict[str, float]]] = {v: [] for v in variants}
        print(f"\nablation of {name}, seeds 1–{args.seeds}; load average before {_load()}", flush=True)
        print(f"  {'seed':>4} {'train_s':>8} {'test %':>7} {'whole s':>8}   ({name} itself)")
        for seed in range(1, args.seeds + 1):
            for variant, removed in variants.items():
                runs[variant].append(whole_process([*overrides, *RECIPES[name], *removed, f"seed={seed}"], work))
            one = runs[f"{name} (as it is)"][-1]
            print(f"  {seed:>4} {one['train_s'] or float('nan'):>8.2f} {100 * (one['test_acc'] or float('nan')):>7.2f} "
                  f"{one['wall_s']:>8.1f}", flush=True)
        print(f"load average after {_load()}")
        width = max(len(v) for v in runs)
        print(f"  {'variant':<{width}} {'train_s':>22} {'test acc %':>24} {'min %':>6} {'whole process s':>22}")
        for variant, rs in runs.items():
            print(f"  {variant:<{width}} {process_columns(rs)}", flush=True)


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# ------------------------------------------------------------------ the report
def main(argv: List[str] | None = None) -> None:

    from cnnexp.config import args as cli_args
    from cnnexp.core.console import quiet_lightning
    from cnnexp.core.errors import SettingsError, UserError, fail

    argv = sys.argv[1:] if argv is None else argv
    cli_args.exit_on_help(__doc__, argv, BenchArgs)
    ours = {f.name for f in fields(BenchArgs)}
    bench_argv = [a for a in argv if a.split("=", 1)[0] in ours]
    overrides = [a for a in argv if a not in bench_argv]
    try:
        args = cli_args.parse(BenchArgs, bench_argv)
        unknown = [name for name in args.recipes.split(",") if name not in RECIPES]
        if unknown:  # found before minutes of measuring, not after
            raise SettingsError("recipes", args.recipes, f"{unknown[0]} is not a recipe; use a comma list of "
                                f"{', '.join(RECIPES)}")
        if args.peer and not (Path(args.peer).expanduser() / "src" / "train.py").is_file():
            raise SettingsError("peer", args.peer, "a checkout of lightning-hydra-template (with src/train.py)")
        settings = compose_settings(overrides)
        if args.ablate:
            for name in args.recipes.split(","):
                compose_settings([*overrides, *RECIPES[name], *(o for removed in ABLATIONS.get(name, {}).values()
                                                                 for o in removed)])
    except UserError as e:
        fail(e)

    import lightning as L
    import torch

    quiet_lightning()
    from cnnexp.data.mnist import MNISTDataModule

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, capability {torch.backends.cpu.get_cpu_capability()}; "
          f"accelerator=auto runs on {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'the CPU'}")
    print(f"command: python -m cnnexp.bench {' '.join(argv)}\n")
    if args.ablate:
        with tempfile.TemporaryDirectory(prefix="cnnexp-bench-") as tmp:
            ablation_table(args, overrides, Path(tmp))
        return
    L.seed_everything(0, verbose=False)
    datamodule = MNISTDataModule(settings.data, seed=settings.seed)
    datamodule.prepare_data()
    datamodule.setup("fit")
    bf16 = copy.deepcopy(settings)
    bf16.trainer.precision = "bf16-mixed"
    with tempfile.TemporaryDirectory(prefix="cnnexp-bench-") as tmp:
        work = Path(tmp)
        raw_root = uncompressed_copy(settings.data.root, work / "notebook-data")
        measures = {
            "a notebook loop (DataLoader + ToTensor)": lambda: notebook_loop(settings, raw_root, args.steps, args.warmup),
            "b plain loop, in-memory tensors": lambda: tensor_loop(settings, datamodule, args.steps, args.warmup),
            "c cnnexp (Lightning, default config)": lambda: lightning_run(settings, datamodule, args.steps, args.warmup, work),
            "d cnnexp, bf16-mixed": lambda: lightning_run(bf16, datamodule, args.steps, args.warmup, work),
        }
        samples: Dict[str, List[float]] = {name: [] for name in measures}
        if args.rounds:  # rounds=0 skips the speed comparison
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
        if args.startup:
            startup_table(args, overrides, work, raw_root)
        if args.sweep:
            seq = sweep_seconds(overrides, work / "sequential")
            par = sweep_seconds(overrides, work / "parallel", ["hydra/launcher=parallel"])
            before = sweep_seconds(overrides, work / "eval-before", EVAL_BEFORE)
            print(f"4-run sweep: sequential {seq:.1f} s, hydra/launcher=parallel {par:.1f} s  → {seq / par:.2f}× faster; "
                  f"with {' '.join(EVAL_BEFORE)} {before:.1f} s")
            print(split_table({"evaluation as before #18": sweep_split(work / "eval-before", before),
                               "now": sweep_split(work / "sequential", seq)}))
        if args.search_modes:
            measured = search_modes(overrides, work)
            print("search of 8 trials of 1 or 4 epochs, hydra.sweeper.n_jobs=2 (hydra/launcher=parallel): wall s, "
                  "share of slot time idle (while trials were still to start; target ≤ 10 %)")
            for mode, (wall, idle, queued) in measured.items():
                print(f"    {mode:<18} {wall:7.1f} s   idle {100 * idle:4.1f} %   ({100 * queued:4.1f} %)")
        if args.estimate:
            estimate_table(args, overrides, work)
        if args.accuracy and args.seeds:
            recipe_table(args, overrides, work)


if __name__ == "__main__":
    main()
