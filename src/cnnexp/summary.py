"""`python -m cnnexp.summary SWEEP_FOLDER`: the table of a sweep again, from its runs' results.json,
with summary.csv, summary_runs.csv and summary.png rewritten (and a search's history and
importance figures). Takes one argument, a sweep folder (it holds multirun.yaml); the replicate
keys are the sweep's own (sweep_options.replicate_keys). A search's study is read, never written;
one kept in a database is read only where you name it: storage=URL.

    python -m cnnexp.summary outputs/multirun/2026-11-25/10-31-02
    python -m cnnexp.summary outputs/multirun/2026-11-30/16-02-50 storage=postgresql://me@db-host/studies
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List

from cnnexp.core.errors import UserError, fail
from cnnexp.records.folder import SWEEP_CONFIG, is_sweep
from cnnexp.sweeps.collect import collect, recorded_replicate_keys
from cnnexp.sweeps.summarize import write_summary


def main(argv: List[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    from cnnexp.config.args import exit_on_help

    from cnnexp.search.study import name_storage, storage_arg

    exit_on_help(__doc__, args)
    try:
        args, named = storage_arg(args)  # a database study is read only where the user names it
    except UserError as e:
        fail(e)
    name_storage(named)
    if len(args) != 1:
        fail("usage: python -m cnnexp.summary SWEEP_FOLDER [storage=URL] (a folder under outputs/multirun/)")
    folder = Path(args[0]).expanduser()
    if not folder.is_dir():
        fail(f"{args[0]}: no such folder")
    if not is_sweep(folder):
        fail(f"{args[0]}: not a sweep folder (no {SWEEP_CONFIG}); pass a folder under outputs/multirun/, "
             "e.g. outputs/multirun/2026-11-25/10-31-02")
    if not collect(folder):
        fail(f"{args[0]}: this sweep holds no runs yet")
    try:
        keys = recorded_replicate_keys(folder)
    except Exception as e:
        fail(f"{args[0]}/{SWEEP_CONFIG}: not readable ({str(e).splitlines()[0][:160]}); "
             "`python -m cnnexp.check` says what else is wrong in this folder")
    try:
        write_summary(folder, keys)
    except UserError as e:  # a search's study that is not ours, not readable, or in a database not named
        fail(e)


if __name__ == "__main__":
    from cnnexp.core.console import report_like_cat

    report_like_cat()
    main()
