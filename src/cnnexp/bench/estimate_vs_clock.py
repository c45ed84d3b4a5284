"""The cost estimate a run prints before it starts, held against the epochs the run then takes
(`estimate=true`): what keeps cnnexp.cost.estimate's rates honest."""

from __future__ import annotations

import csv
import statistics
import tempfile
import time
from pathlib import Path
from typing import List

from cnnexp.bench.runs import cli, compose_settings, load_average
from cnnexp.records.folder import METRICS

ESTIMATED = {  # name → overrides: the networks the estimate is held to (±30 %)
    "cnn3": [],
    "speedrun": ["experiment=speedrun"],
    "convae": ["model=convae"],
    "k5 s2 same": ["model.kernel_size=5", "model.stride=2", "model.padding=same"],
}


def estimate_table(args, overrides: List[str], work: Path) -> None:
    """Calibrate afresh, then for each of ESTIMATED: the estimate the run prints, and the epochs
    it then takes (time/epoch_s in metrics.csv: training and validation), as a user runs it."""
    from cnnexp.cost import estimate as cost
    from cnnexp.cost.calibration import calibrate

    started = time.perf_counter()
    calibration = calibrate(force=True)
    print(f"\ncost estimate against measurement ({args.epochs} epochs each, no test; load {load_average()}); "
          f"calibrated afresh in {time.perf_counter() - started:.1f} s")
    print(f"  {'network':<12} {'mode':<10} {'estimated s/epoch':>18} {'measured s/epoch':>17} "
          f"{'measured/estimated':>19}   epochs measured")
    for name, extra in ESTIMATED.items():
        run = [*overrides, *extra, f"trainer.max_epochs={args.epochs}", "test_after_fit=false"]
        estimate = cost.estimate(compose_settings(run), calibration)
        out = Path(tempfile.mkdtemp(dir=work))
        rc, _ = cli([*run, "callbacks.progress_bar_refresh=0", f"paths.output_dir={out}"], work, memory=False)
        rows = list(csv.DictReader(next(out.glob(f"*/*/{METRICS}")).open())) if rc == 0 else []
        epochs = [float(r["time/epoch_s"]) for r in rows]
        measured = statistics.median(epochs) if epochs else float("nan")
        print(f"  {name:<12} {estimate.mode:<10} {estimate.epoch_s:>18.1f} {measured:>17.1f} "
              f"{measured / estimate.epoch_s:>19.2f}   {', '.join(f'{e:.1f}' for e in epochs) or f'failed (exit {rc})'}",
              flush=True)
    print(f"  (load {load_average()})")
