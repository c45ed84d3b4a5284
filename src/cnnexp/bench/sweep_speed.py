"""Sweeps and searches against the clock: a 4-run sweep sequential and through
hydra/launcher=parallel, where its jobs' time goes (from each run's record), and a search whose
trials differ in length launched in batches and in steady state."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Dict, List

from cnnexp.bench.runs import cli
from cnnexp.records.folder import RESULTS

# The evaluation of a job as it was before issue #18 (batches of 1,000, NCHW), for the split's "before".
EVAL_BEFORE = ["data.eval_batch_size=1000", "performance.channels_last=false"]
PARTS = {"data_s": "data", "train_steps_s": "train steps", "validation_s": "validation", "test_s": "test",
         "views_s": "views", "checkpoints_s": "checkpoints"}
# A search whose trials differ in length (1 or 4 epochs), two at a time through hydra/launcher=parallel.
SEARCH = ["-m", "hydra/sweeper=optuna", "hydra/launcher=parallel", "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=8",
          "hydra.sweeper.sampler=random", "hydra.sweeper.seed=3", "trainer.max_epochs=choice(1,4)",
          "optimizer.lr=tag(log,interval(1e-4,1e-2))", "trainer.limit_train_batches=30"]


def sweep_seconds(overrides: List[str], folder: Path, extra: List[str] = ()) -> float:
    """Wall seconds of a 4-run sweep of 60-batch jobs into `folder`."""
    grid = ["-m", "model.kernel_size=3,5", "model.pool=max,avg"]
    rc, seconds = cli([*grid, *extra, *overrides, "trainer.max_epochs=1", "trainer.limit_train_batches=60",
                       "callbacks.progress_bar_refresh=0", f"paths.output_dir={folder}"], folder.parent)
    if rc != 0:
        raise RuntimeError(f"the sweep {' '.join(extra)} failed (exit {rc})")
    return seconds


def sweep_split(folder: Path, wall: float) -> Dict[str, float]:
    """Seconds per job of a sequential sweep, by part, from each run's results.json; what the
    sweep's wall time holds beyond its jobs is shared out as the launch share."""
    records = [json.loads(p.read_text()) for p in sorted(folder.glob(f"multirun/*/*/*/{RESULTS}"))]
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


def sweep_table(overrides: List[str], work: Path) -> None:
    """The sweep sequential, parallel, and with the evaluation as before #18; the split per job."""
    seq = sweep_seconds(overrides, work / "sequential")
    par = sweep_seconds(overrides, work / "parallel", ["hydra/launcher=parallel"])
    before = sweep_seconds(overrides, work / "eval-before", EVAL_BEFORE)
    print(f"4-run sweep: sequential {seq:.1f} s, hydra/launcher=parallel {par:.1f} s  → {seq / par:.2f}× faster; "
          f"with {' '.join(EVAL_BEFORE)} {before:.1f} s")
    print(split_table({"evaluation as before #18": sweep_split(work / "eval-before", before),
                       "now": sweep_split(work / "sequential", seq)}))


def search_modes(overrides: List[str], work: Path) -> Dict[str, tuple]:
    """The same search (same seeded draws) launched in batches, each waited for, and in steady
    state: cnnexp.search.report.slot_use of each."""
    from cnnexp.search.report import slot_use
    from cnnexp.search.study import load_study

    measured = {}
    for mode, steady in (("batches of n_jobs", "false"), ("steady state", "true")):
        folder = work / f"search-{steady}"
        rc, _ = cli([*SEARCH, f"hydra.sweeper.steady={steady}", *overrides, "callbacks.progress_bar_refresh=0",
                     f"paths.output_dir={folder}"], work, memory=False)
        if rc != 0:
            raise RuntimeError(f"the search with hydra.sweeper.steady={steady} failed (exit {rc})")
        measured[mode] = slot_use(load_study(next(folder.glob("multirun/*/*"))).get_trials(), 2)
    return measured


def search_table(overrides: List[str], work: Path) -> None:
    measured = search_modes(overrides, work)
    print("search of 8 trials of 1 or 4 epochs, hydra.sweeper.n_jobs=2 (hydra/launcher=parallel): wall s, "
          "share of slot time idle (while trials were still to start; target ≤ 10 %)")
    for mode, (wall, idle, queued) in measured.items():
        print(f"    {mode:<18} {wall:7.1f} s   idle {100 * idle:4.1f} %   ({100 * queued:4.1f} %)")
