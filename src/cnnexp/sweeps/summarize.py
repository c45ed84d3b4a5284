"""A sweep's summary, composed: its runs' records read into rows (collect), the tables printed and
written (tables), the figure drawn (plots) and its TensorBoard run written (hparams_experiment).

Written: summary.csv (one row per setting, or per run when there are no replicates),
summary_runs.csv (one row per run) and summary.png. A sweep writes them when it ends; `python -m
cnnexp.summary SWEEP_FOLDER` rebuilds them from the runs' results.json at any time.
"""

from __future__ import annotations

import errno
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from cnnexp.core.console import folded
from cnnexp.core.errors import RunError, UserError, fail
from cnnexp.records.folder import (AS_MEANT, SUMMARY, SUMMARY_PLOT, SUMMARY_RUNS, clear_summary_stale, shown_status,
                                   summary_path,
                                   summary_plot_path, summary_runs_path, went_wrong)
from cnnexp.search.report import report as search_report
from cnnexp.search.study import is_search_folder, load_study
from cnnexp.sweeps.collect import collect, first_launch, recorded_replicate_keys
from cnnexp.sweeps.hparams_experiment import log_to_tensorboard
from cnnexp.sweeps.plots import plot
from cnnexp.sweeps.replicates import is_replicated
from cnnexp.sweeps.stats import interval
from cnnexp.sweeps.tables import (CLIPPED, fit_terminal, group_columns, group_table, print_best, print_contrast, printable,
                                  reason, run_table, write_csv)
from cnnexp.tracking.events import SWEEP_RUN


class SummaryNotSaved(RunError):
    """The summary was printed, but its files could not be written (a read-only folder, a full
    disk, a folder where summary.csv belongs). str(): the one line; `rows`: what was printed."""

    def __init__(self, sweep_dir: Path, error: OSError, rows: List[Dict]):
        self.rows = rows
        where = str(error.filename2 or error.filename or sweep_dir)
        where = str(Path(where).parent) if where.endswith(".part") else where  # the atomic writer's temporary file
        advice = {errno.EISDIR: "move that folder away", errno.EEXIST: "move that file away",
                  errno.ENOTDIR: "move that file away", errno.ENOSPC: "free space there",
                  errno.EDQUOT: "free space there"}.get(error.errno, "copy the sweep folder somewhere writable "
                                                                    "and summarise the copy")
        super().__init__(f"{where}: {error.strerror or error} — the summary above was printed, but its files "
                         f"({SUMMARY}, {SUMMARY_RUNS}, {SUMMARY_PLOT}) were not written; {advice}, then run "
                         "`python -m cnnexp.summary` again to keep them")


def write_summary(sweep_dir: Path, replicate_keys: Sequence[str] | None = None, write: bool = True) -> List[Dict]:
    """Print the tables; with `write`, then save them, the plot and the TensorBoard summary too
    (each file whole or not at all; the sweep's own TensorBoard run rewritten, not added to).
    Raises SummaryNotSaved, once everything is printed, where a file could not be written."""
    sweep_dir = Path(sweep_dir)
    study = load_study(sweep_dir) if is_search_folder(sweep_dir) else None  # read-only; refused before any write
    replicate_keys = recorded_replicate_keys(sweep_dir) if replicate_keys is None else replicate_keys
    rows = collect(sweep_dir)
    several = study is not None and len(study.directions) > 1  # the front, printed below, is the answer
    tables = print_tables(rows, replicate_keys, several)
    print_code_versions(sweep_dir, rows)
    unsaved = None
    earlier = sorted((sweep_dir / SWEEP_RUN).glob("events.out.tfevents.*")) if write else []
    if write:
        try:
            in_the_way(sweep_dir)
            for path, header, plain in tables:
                write_csv(path(sweep_dir), header, plain)
            replicated = is_replicated(rows, replicate_keys)
            figures = plot(sweep_dir, rows, replicate_keys)
            log_to_tensorboard(sweep_dir, rows, figures, replicate_keys if replicated else ())
        except OSError as e:
            unsaved = e
    if study is not None:  # sqlite, journal or a database
        try:
            search_report(sweep_dir, write and unsaved is None, study, interval)
        except OSError as e:
            unsaved = unsaved or e
    if unsaved is not None:
        raise SummaryNotSaved(sweep_dir, unsaved, rows)
    if write:
        clear_summary_stale(sweep_dir)  # it says what every run holds again
    for old in earlier:  # this summary's events replace them: `_sweep` holds one summary, not one per call
        old.unlink(missing_ok=True)
    return rows


def print_code_versions(sweep_dir: Path, rows: List[Dict]) -> None:
    """A sweep whose runs ran on different code (the tree changed between its jobs) says so, with
    the runs of each version: their numbers are not one experiment's."""
    from cnnexp.records.provenance import code_of, read_provenance

    versions: Dict[str, List[str]] = {}
    for row in rows:
        try:
            found = read_provenance(sweep_dir / row["run"])
        except UserError:
            found = None
        if found is not None:
            code = code_of(found)
            name = code.get("git") or f"commit {code['commit']}" + (f" + change {code['patch']}" if code["patch"] != "none" else "")
            versions.setdefault(name, []).append(row["run"])
    if len(versions) > 1:
        print(f"\nnote: these runs ran on {len(versions)} versions of the code (the tree changed between jobs):")
        for name, runs in versions.items():
            shown = ", ".join(runs[:4]) + (f" and {len(runs) - 4} more" if len(runs) > 4 else "")
            print(printable(f"  {name}: {shown}")[:100])
        print("  `python -m cnnexp.compare RUN_A RUN_B` shows how they differ")


def in_the_way(sweep_dir: Path) -> None:
    """Before any file is written: a folder where a summary file goes, or a file where `_sweep`
    goes, is an OSError (as writing would raise after the first files were replaced)."""
    for path in (summary_runs_path(sweep_dir), summary_path(sweep_dir), summary_plot_path(sweep_dir)):
        if path.is_dir() and not path.is_symlink():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    events = sweep_dir / SWEEP_RUN
    if (events.exists() or events.is_symlink()) and (events.is_symlink() or not events.is_dir()):
        raise FileExistsError(errno.EEXIST, "not a folder, where the sweep's TensorBoard run goes", str(events))
    for session in (p for p in events.iterdir() if p.is_symlink()) if events.is_dir() else ():
        raise FileExistsError(errno.EEXIST, "a link, where a setting's TensorBoard session goes", str(session))


def print_tables(rows: List[Dict], replicate_keys: Sequence[str], several: bool = False) -> List[Tuple]:
    """Print the run (or setting) table, the contrast, the note on extended runs and the best;
    returns what the CSVs hold: (path of a sweep folder's file, header, plain rows) each. `several`
    objectives: no best and no contrast by one metric — the Pareto front that follows is the answer."""
    header, friendly, plain = run_table(rows)
    tables = [(summary_runs_path, header, plain)]
    replicated = is_replicated(rows, replicate_keys)
    if replicated:
        g_header, g_friendly, g_plain = group_table(rows, replicate_keys)
        print(fit_terminal(g_header, g_friendly, "settings"))
        clipped = f" (an end marked {CLIPPED} was past what the metric can be, an accuracy above 1 or a loss below 0, " \
            "and is clipped to it)" if any(c.endswith(CLIPPED) or f"{CLIPPED}–" in c for row in g_friendly for c in row) else ""
        print("\n" + folded(f"(mean ± sd over {', '.join(replicate_keys)}; 95%: the mean's Student-t interval"
                            f"{clipped}; every statistic in summary.csv, each run in summary_runs.csv)", " "))
        if not several:
            print_contrast(rows, replicate_keys, [row[0] for row in g_plain])
        tables.append((summary_path, group_columns(rows), g_plain))
    else:
        print(fit_terminal(header, friendly, "runs"))
        tables.append((summary_path, header, plain))
    extended = [r for r in rows if r.get("extends") and r.get("status") == "ok"]
    if extended:  # its row is no longer the sweep's setting alone
        print("\n" + folded("note: extended by a resume after the sweep: " + printable("; ".join(
            f"{r['run']} ({first_launch(r).get('epochs')} → {r.get('epochs')} epochs)" for r in extended))
            + " — ranked with the others as it is now", "  "))
    if not several:
        print_best(rows, replicate_keys if replicated else ())
    return tables


def finish_sweep(sweep_dir: Path, replicate_keys: Sequence[str] | None = None, write: bool = True) -> None:
    """When a sweep ends: print and save the tables and plot (a resume that ran nothing only
    prints them); exit 1 if a run did not end ok — except, in a search, trials pruned or rejected
    by the shape check: those are how a search works. Files that could not be written: the one
    line, after the rest, and exit 2."""
    try:
        rows, unsaved = write_summary(sweep_dir, replicate_keys, write), None
    except SummaryNotSaved as e:
        rows, unsaved = e.rows, e
    counts = Counter(shown_status(r) for r in rows)
    written = ", ".join(n for n in (SUMMARY, SUMMARY_PLOT) if (Path(sweep_dir) / n).is_file())  # a seed-only grid draws none
    print("\n" + folded(f"sweep folder: {sweep_dir} ({written or 'no summary files'}) — "
                        + ", ".join(f"{n} {status}" for status, n in sorted(counts.items(), key=lambda c: c[0] != "ok")),
                        "  "))
    not_ok = [r for r in rows if went_wrong(r)]
    if not_ok:
        kinds = " or ".join(sorted({shown_status(r) for r in not_ok})).replace("refused", "refused before launch")
        print(f"cnnexp: {len(not_ok)} of {len(rows)} runs {kinds}:\n"  # each reason's first line, whole, folded
              + "\n".join(folded(f"  {printable(r['run'])}: {reason(r) or r.get('status')}") for r in not_ok),
              file=sys.stderr)
    if unsaved is not None:
        fail(unsaved)
    if not not_ok and not any(r.get("status") in AS_MEANT for r in rows):
        print("cnnexp: no run trained: every setting failed the shape check; widen the space to settings that fit "
              "(python -m cnnexp.shapes shows a setting's table)", file=sys.stderr)
        raise SystemExit(1)
    if not_ok:
        raise SystemExit(1)
