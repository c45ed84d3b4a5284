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
test accuracy per recipe over `seeds` from `first_seed`, with each recipe's record (the medians of its
clocks, its mean, spread and lowest accuracy, the share of seeds at its target); peak=true this CPU's
matmul and convolution peak and each training step's share of it; imports=true the start-up run's
import profile. ablate=true measures only the ablation of a recipe
(`ABLATIONS`): the recipe, then each trick taken away (or a dropped one put back) in turn, each a
`python -m cnnexp.train` per seed, interleaved seed by seed. Options are key=value; other
key=value pairs override the config:

    python -m cnnexp.bench data.root=../shared/datasets rounds=3 accuracy=false
    python -m cnnexp.bench data.root=../shared/datasets rounds=0 sweep=false accuracy=false peer=../lightning-hydra-template
    python -m cnnexp.bench data.root=../shared/datasets rounds=0 startup=false sweep=false accuracy=false estimate=true
    python -m cnnexp.bench data.root=../shared/datasets recipes=speedrun ablate=true seeds=5 first_seed=1001
    python -m cnnexp.bench data.root=../shared/datasets rounds=0 startup=false sweep=false recipes=speedrun seeds=30 first_seed=1001 loops=false
    python -m cnnexp.bench data.root=../shared/datasets rounds=0 startup=false sweep=false accuracy=false peak=true imports=true
    python -m cnnexp.bench data.root=../shared/datasets rounds=0 startup=false sweep=false accuracy=false system_metrics=true
    python -m cnnexp.bench data.root=../shared/datasets dims=true ucr_root=data/ucr mnist_batches=100

dims=true measures only 1-D networks against the literature (bench/literature.py): sequential and
permuted MNIST beside TCN, GunPoint, ItalyPowerDemand and JapaneseVowels (ucr_root/<Name>/) beside FCN.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import List, Tuple

from cnnexp.bench.ablation import ABLATIONS, ablation_table
from cnnexp.bench.estimate_vs_clock import estimate_table
from cnnexp.bench.imports import import_table
from cnnexp.bench.literature import PUBLISHED, literature_table
from cnnexp.bench.loops import speed_table, uncompressed_copy
from cnnexp.bench.peak import peak_table
from cnnexp.bench.recipes import RECIPES, recipe_table
from cnnexp.bench.runs import compose_settings
from cnnexp.bench.startup import startup_table
from cnnexp.bench.sweep_speed import search_table, sweep_table
from cnnexp.bench.system_cost import system_metrics_table


@dataclass
class BenchArgs:
    rounds: int = 3          # interleaved rounds of a, b, c, d
    steps: int = 50          # timed training steps per measurement (batch 128)
    warmup: int = 5          # untimed steps first
    startup: bool = True     # launch → first training step
    sweep: bool = True       # 4-run sweep: sequential vs hydra/launcher=parallel
    accuracy: bool = True    # time to 99.2 % test accuracy per recipe, over seeds (default: ~5 min a seed)
    seeds: int = 1           # replicates per recipe: seeds first_seed … first_seed + seeds − 1
    first_seed: int = 1      # the record's: 1001 takes seeds no test and no recipe file uses
    loops: bool = True       # the accuracy part's in-process loop too (the test set after each epoch, untimed)
    recipes: str = "default,fast,speedrun"  # experiments timed to the target (default: conf/ as it is)
    target: float = 0.992    # the test accuracy the accuracy part trains to
    peer: str = ""           # a lightning-hydra-template checkout: its startup and memory measured beside ours
    search_modes: bool = False  # a search of trials of 1 or 4 epochs: batches of n_jobs vs steady state
    estimate: bool = False   # the cost estimate (cnnexp.cost.estimate) against measured epochs, for ESTIMATED
    epochs: int = 2          # epochs per run in the estimate part (the median epoch is compared)
    system_metrics: bool = False  # what one sample of the system metrics costs, and the check each step
    peak: bool = False       # this CPU's matmul and conv peak (fp32, bf16), and each training step's share of it
    imports: bool = False    # the start-up run's import profile: seconds by package, and who pulled each in
    ablate: bool = False     # only this: each recipe's tricks changed one at a time, over `seeds` (python -m cnnexp.train)
    dims: bool = False       # only this: 1-D networks on (p)MNIST and UCR sets beside TCN and FCN
    dims_sets: str = "seqmnist,pmnist,GunPoint,ItalyPowerDemand,JapaneseVowels"
    ucr_root: str = "data/ucr"  # holds <Name>/<Name>_TRAIN.ts and _TEST.ts for each UCR set
    dims_epochs: int = 30    # epochs per UCR set
    mnist_epochs: int = 1    # epochs of (p)MNIST
    mnist_batches: int = 0   # batches per (p)MNIST epoch; 0: all (859 of 64, slow on a CPU)



def checked(argv: List[str]) -> Tuple[BenchArgs, List[str], object]:
    """The bench's own options, the config overrides, and the settings they make; a bad one is
    refused in one line before minutes of measuring, not after."""
    from cnnexp.config import args as cli_args
    from cnnexp.core.errors import SettingsError, UserError, fail

    cli_args.exit_on_help(__doc__, argv, BenchArgs)
    ours = {f.name for f in fields(BenchArgs)}
    bench_argv = [a for a in argv if a.split("=", 1)[0] in ours]
    overrides = [a for a in argv if a not in bench_argv]
    try:
        args = cli_args.parse(BenchArgs, bench_argv)
        if args.seeds < 1 and (args.accuracy or args.ablate):
            raise SettingsError("seeds", args.seeds, "an integer ≥ 1: the runs per recipe and variant")
        if args.first_seed < 0:
            raise SettingsError("first_seed", args.first_seed, "an integer ≥ 0, as seed= takes (1001: seeds no test uses)")
        unknown = [name for name in args.recipes.split(",") if name not in RECIPES]
        if unknown:
            raise SettingsError("recipes", args.recipes, f"{unknown[0]} is not a recipe; use a comma list of "
                                f"{', '.join(RECIPES)}")
        if args.peer and not (Path(args.peer).expanduser() / "src" / "train.py").is_file():
            raise SettingsError("peer", args.peer, "a checkout of lightning-hydra-template (with src/train.py)")
        unknown = [name for name in args.dims_sets.split(",") if name not in PUBLISHED]
        if args.dims and unknown:
            raise SettingsError("dims_sets", args.dims_sets, f"a comma list of {', '.join(PUBLISHED)}")
        settings = compose_settings(overrides)
        if args.ablate:
            for name in args.recipes.split(","):
                compose_settings([*overrides, *RECIPES[name], *(o for removed in ABLATIONS.get(name, {}).values()
                                                                 for o in removed)])
    except UserError as e:
        fail(e)
    return args, overrides, settings


def main(argv: List[str] | None = None) -> None:
    from cnnexp.core.errors import UserError, fail
    from cnnexp.core.files import os_error_line

    argv = sys.argv[1:] if argv is None else argv
    args, overrides, settings = checked(argv)
    try:
        measure(argv, args, overrides, settings)
    except OSError as e:  # its scratch folder full or read-only, the data unreadable: one line, not a traceback
        fail(os_error_line(e, elsewhere="TMPDIR=… holds the bench's scratch files"))
    except UserError as e:  # a recipe's settings refused when its in-process loop composes them
        fail(e)


def measure(argv: List[str], args: BenchArgs, overrides: List[str], settings) -> None:
    from cnnexp.core.console import quiet_lightning

    import lightning as L
    import torch

    quiet_lightning()
    from cnnexp.data.mnist import MNISTDataModule

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, capability {torch.backends.cpu.get_cpu_capability()}; "
          f"accelerator=auto runs on {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'the CPU'}")
    print(f"command: python -m cnnexp.bench {' '.join(argv)}\n")
    if args.ablate or args.dims:
        with tempfile.TemporaryDirectory(prefix="cnnexp-bench-") as tmp:
            (ablation_table if args.ablate else literature_table)(args, overrides, Path(tmp))
        return
    L.seed_everything(0, verbose=False)
    datamodule = MNISTDataModule(settings.data, seed=settings.seed)
    datamodule.prepare_data()
    datamodule.setup("fit")
    with tempfile.TemporaryDirectory(prefix="cnnexp-bench-") as tmp:
        work = Path(tmp)
        raw_root = uncompressed_copy(settings.data.root, work / "notebook-data")
        if args.rounds:  # rounds=0 skips the speed comparison
            speed_table(args, settings, datamodule, raw_root, work)
        if args.startup:
            startup_table(args, overrides, work, raw_root)
        if args.imports:
            import_table(overrides, work)
        if args.sweep:
            sweep_table(overrides, work)
        if args.search_modes:
            search_table(overrides, work)
        if args.estimate:
            estimate_table(args, overrides, work)
        if args.system_metrics:
            system_metrics_table()
        if args.peak:
            peak_table(args, overrides, work)
        if args.accuracy and args.seeds:
            recipe_table(args, overrides, work)


if __name__ == "__main__":
    main()
