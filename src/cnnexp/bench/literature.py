"""1-D networks against the literature (`dims=true`): sequential and permuted MNIST beside the
TCN of Bai, Kolter & Koltun (2018), and GunPoint, ItalyPowerDemand and JapaneseVowels beside the
fully-convolutional network (FCN) of Wang, Yan & Oates (2017). Each set is one `python -m
cnnexp.train` as a user runs it (cnn3, the conf/ defaults, the stated epochs), and the table
prints its test accuracy, training and whole-process seconds, and the paper's figure."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from cnnexp.bench.runs import load_average, whole_process

# set → (the paper's test accuracy in %, or None where it gives none; where it comes from)
PUBLISHED: Dict[str, tuple] = {
    "seqmnist": (99.0, "TCN, Bai et al. 2018"),
    "pmnist": (97.2, "TCN, Bai et al. 2018"),
    "GunPoint": (100.0, "FCN, Wang et al. 2017 (error 0.000)"),
    "ItalyPowerDemand": (97.0, "FCN, Wang et al. 2017 (error 0.030)"),
    "JapaneseVowels": (None, "FCN: not in Wang et al. 2017 (univariate archive only); no figure checked here"),
}
UCR = ("GunPoint", "ItalyPowerDemand", "JapaneseVowels")


def overrides_for(name: str, ucr_root: str, epochs: int, mnist_epochs: int, mnist_batches: Optional[int]) -> List[str]:
    """The training command of one set: a UCR problem's folder under `ucr_root`, or (p)MNIST reduced
    to `mnist_batches` batches an epoch (None: whole epochs)."""
    if name in UCR:
        return ["data=series", f"data.root={Path(ucr_root).expanduser().resolve() / name}", f"trainer.max_epochs={epochs}"]
    reduced = [f"trainer.limit_train_batches={mnist_batches}"] if mnist_batches else []
    return ["data=seqmnist", f"data.permute={str(name == 'pmnist').lower()}", f"trainer.max_epochs={mnist_epochs}",
            *reduced]


def literature_table(args, overrides: List[str], work: Path) -> None:
    """One row per set in args.dims_sets: ours beside the paper's."""
    sets = args.dims_sets.split(",")
    print(f"\n1-D networks against the literature; load average before {load_average()}", flush=True)
    print(f"  {'set':<17} {'epochs':>11} {'test %':>7} {'train s':>8} {'whole s':>8}  {'paper %':>7}  source")
    for name in sets:
        mnist_epochs = f"{args.mnist_epochs}×{args.mnist_batches or 'all'}b"
        epochs = args.dims_epochs if name in UCR else mnist_epochs
        quiet = ["callbacks.views.every_n_epochs=1000", "callbacks.views.arithmetic=false"]
        base = [o for o in overrides if not (name in UCR and o.startswith("data.root="))]  # MNIST's root is not a UCR set's
        got = whole_process([*base, *quiet, *overrides_for(name, args.ucr_root, args.dims_epochs,
                                                                args.mnist_epochs, args.mnist_batches)], work)
        paper, source = PUBLISHED[name]
        acc = "failed" if got["test_acc"] is None else f"{100 * got['test_acc']:.1f}"
        print(f"  {name:<17} {epochs!s:>11} {acc:>7} {got['train_s'] or float('nan'):>8.1f} {got['wall_s']:>8.1f}  "
              f"{'—' if paper is None else f'{paper:.1f}':>7}  {source}", flush=True)
    print(f"load average after {load_average()}")
