"""A sweep's summary, composed: its runs' records read into rows (collect), the tables printed and
written (tables), the figure drawn (plots) and its TensorBoard run written (hparams_experiment).

Written: summary.csv (one row per setting, or per run when there are no replicates),
summary_runs.csv (one row per run) and summary.png. A sweep writes them when it ends; `python -m
cnnexp.summary SWEEP_FOLDER` rebuilds them from the runs' results.json at any time.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Sequence

from cnnexp.records.folder import AS_MEANT, shown_status, summary_path, summary_runs_path, went_wrong
from cnnexp.search.report import report as search_report
from cnnexp.search.study import is_search_folder, load_study
from cnnexp.sweeps.collect import collect, first_launch, recorded_replicate_keys
from cnnexp.sweeps.hparams_experiment import log_to_tensorboard
from cnnexp.sweeps.plots import plot
from cnnexp.sweeps.replicates import is_replicated
from cnnexp.sweeps.tables import (fit_terminal, group_columns, group_table, print_best, print_contrast, reason,
                                  run_table, write_csv)


def write_summary(sweep_dir: Path, replicate_keys: Sequence[str] | None = None, write: bool = True) -> List[Dict]:
    """Print the tables; with `write`, save them, the plot and the TensorBoard summary too."""
    sweep_dir = Path(sweep_dir)
    study = load_study(sweep_dir) if is_search_folder(sweep_dir) else None  # read-only; refused before any write
    replicate_keys = recorded_replicate_keys(sweep_dir) if replicate_keys is None else replicate_keys
    rows = collect(sweep_dir)
    header, friendly, plain = run_table(rows)
    if write:
        write_csv(summary_runs_path(sweep_dir), header, plain)
    replicated = is_replicated(rows, replicate_keys)
    if replicated:
        g_header, g_friendly, g_plain = group_table(rows, replicate_keys)
        print(fit_terminal(g_header, g_friendly, "settings"))
        clipped = " (an end past what the metric can be, an accuracy above 1 or a loss below 0, is clipped to it)" \
            if any("(clipped)" in c for row in g_friendly for c in row) else ""
        print(f"\n(mean ± sd over {', '.join(replicate_keys)}; 95%: the mean's Student-t interval{clipped}; "
              "every statistic in summary.csv, each run in summary_runs.csv)")
        print_contrast(rows, replicate_keys, [row[0] for row in g_plain])
        if write:
            write_csv(summary_path(sweep_dir), group_columns(rows), g_plain)
    else:
        print(fit_terminal(header, friendly, "runs"))
        if write:
            write_csv(summary_path(sweep_dir), header, plain)
    extended = [r for r in rows if r.get("extends") and r.get("status") == "ok"]
    if extended:  # its row is no longer the sweep's setting alone
        print("\nnote: extended by a resume after the sweep: " + "; ".join(
            f"{r['run']} ({first_launch(r).get('epochs')} → {r.get('epochs')} epochs)" for r in extended)
            + " — ranked with the others as it is now")
    print_best(rows, replicate_keys if replicated else ())
    if write:
        figures = plot(sweep_dir, rows, replicate_keys)
        log_to_tensorboard(sweep_dir, rows, figures, replicate_keys if replicated else ())
    if study is not None:  # sqlite, journal or a database
        search_report(sweep_dir, write, study)
    return rows


def finish_sweep(sweep_dir: Path, replicate_keys: Sequence[str] | None = None, write: bool = True) -> None:
    """When a sweep ends: print and save the tables and plot (a resume that ran nothing only
    prints them); exit 1 if a run did not end ok — except, in a search, trials pruned or rejected
    by the shape check: those are how a search works."""
    rows = write_summary(sweep_dir, replicate_keys, write)
    counts = Counter(shown_status(r) for r in rows)
    print(f"\nsweep folder: {sweep_dir} (summary.csv, summary.png) — "
          + ", ".join(f"{n} {status}" for status, n in sorted(counts.items(), key=lambda c: c[0] != "ok")))
    not_ok = [r for r in rows if went_wrong(r)]
    if not not_ok and not any(r.get("status") in AS_MEANT for r in rows):
        print("cnnexp: no run trained: every setting failed the shape check; widen the space to settings that fit "
              "(python -m cnnexp.shapes shows a setting's table)", file=sys.stderr)
        raise SystemExit(1)
    if not_ok:
        kinds = " or ".join(sorted({r.get("status", "?") for r in not_ok}))
        print(f"cnnexp: {len(not_ok)} of {len(rows)} runs {kinds}:\n"  # each reason's first line, whole
              + "\n".join(f"  {r['run']}: {reason(r) or r.get('status')}" for r in not_ok), file=sys.stderr)
        raise SystemExit(1)
