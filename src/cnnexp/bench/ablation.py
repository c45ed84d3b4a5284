"""A recipe's ablation (`ablate=true`): the recipe as it is, then each trick it keeps taken away
and each it was measured with and dropped put back, one `python -m cnnexp.train` per seed and
variant, interleaved seed by seed (the machine's load drifts alike for all)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from cnnexp.bench.recipes import RECIPES, process_columns, seeds_of
from cnnexp.bench.runs import load_average, whole_process

# A recipe's variants (the recipe's YAML says what it keeps); "before" takes them all away.
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
}, "fast": {  # what the speedrun's table does not show: the shifted training images, and the epochs they need
    "without shifted training images": ["augment.shift=0"],
    "with a 6th epoch": ["trainer.max_epochs=6"],
    "with shifts of up to 2 pixels": ["augment.shift=2"],
}}


def ablation_table(args, overrides: List[str], work: Path) -> None:
    """Each recipe with ablations: itself, then each trick removed, one `python -m cnnexp.train` per
    seed and variant, interleaved seed by seed (the machine's load drifts alike for all)."""
    for name in args.recipes.split(","):
        given = {o.split("=", 1)[0] for o in overrides}  # the user's own overrides win over a removal
        variants = {f"{name} (as it is)": [], **{f"  {change}": [o for o in removed if o.split("=", 1)[0] not in given]
                                                 for change, removed in ABLATIONS.get(name, {}).items()}}
        runs: Dict[str, List[Dict[str, float]]] = {v: [] for v in variants}
        seeds = seeds_of(args)
        print(f"\nablation of {name}, seeds {seeds.start}–{seeds.stop - 1}; load average before {load_average()}", flush=True)
        print(f"  {'seed':>4} {'train_s':>8} {'test %':>7} {'whole s':>8}   ({name} itself)")
        for seed in seeds:
            for variant, removed in variants.items():
                runs[variant].append(whole_process([*overrides, *RECIPES[name], *removed, f"seed={seed}"], work))
            one = runs[f"{name} (as it is)"][-1]
            print(f"  {seed:>4} {one['train_s'] or float('nan'):>8.2f} {100 * (one['test_acc'] or float('nan')):>7.2f} "
                  f"{one['wall_s']:>8.1f}", flush=True)
        print(f"load average after {load_average()}")
        width = max(len(v) for v in runs)
        print(f"  {'variant':<{width}} {'train_s':>22} {'test acc %':>24} {'min %':>6} {'whole process s':>22}")
        for variant, rs in runs.items():
            print(f"  {variant:<{width}} {process_columns(rs)}", flush=True)
