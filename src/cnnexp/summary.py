"""`python -m cnnexp.summary SWEEP_FOLDER`: the table of a sweep again, from its runs' results.json,
with summary.csv, summary_runs.csv and summary.png rewritten (and a search's history and
importance figures). Takes one argument, a sweep folder (it holds multirun.yaml); the replicate
keys are the sweep's own (sweep_options.replicate_keys). A search's study is read, never written;
one kept in a database is read only where you name it: storage=URL.

A run whose results.json cannot be read as a run's record is a row marked `unreadable`, with why.
Where the files cannot be written (a read-only folder), the table is printed, then one
`cnnexp: error:` line says what was not written: exit 2.

    python -m cnnexp.summary outputs/multirun/2026-11-25/10-31-02
    python -m cnnexp.summary outputs/multirun/2026-11-30/16-02-50 storage=postgresql://me@db-host/studies
"""

from __future__ import annotations

import sys
from typing import List

from cnnexp.core.errors import UserError, fail
from cnnexp.core.files import os_error_line
from cnnexp.records.folder import SUMMARY_RUNS, SWEEP_CONFIG, is_sweep
from cnnexp.sweeps.collect import UNREADABLE, collect, recorded_replicate_keys
from cnnexp.sweeps.summarize import write_summary
from cnnexp.sweeps.tables import printable


def main(argv: List[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    from cnnexp.config.args import exit_on_help, folder_argument
    from cnnexp.config.own_network import never_import

    never_import()  # a read-only command: no class a handed folder names is ever imported

    from cnnexp.search.study import name_storage, named_fits, storage_arg

    exit_on_help(__doc__, args)
    try:
        args, named = storage_arg(args)  # a database study is read only where the user names it
    except UserError as e:
        fail(e)
    name_storage(named)
    if len(args) != 1:
        fail("usage: python -m cnnexp.summary SWEEP_FOLDER [storage=URL] (a folder under outputs/multirun/)")
    folder = folder_argument(args[0], "SWEEP_FOLDER")
    if not folder.is_dir():
        fail(f"{args[0]}: no such folder")
    if not is_sweep(folder):
        fail(f"{args[0]}: not a sweep folder (no {SWEEP_CONFIG}); pass a folder under outputs/multirun/, "
             "e.g. outputs/multirun/2026-11-25/10-31-02")
    try:
        named_fits(folder, named)
        if not collect(folder):
            fail(f"{args[0]}: this sweep holds no runs yet")
        rows = write_summary(folder, recorded_replicate_keys(folder))
    except UserError as e:  # a record or a study that cannot be read; the summary not saved, once printed
        fail(e)
    except OSError as e:  # the folder itself not readable
        fail(os_error_line(e, folder))
    unreadable = [r for r in rows if r["status"] == UNREADABLE]
    if unreadable:  # after the table, each on its line: the grouped table has no row for them
        print(f"cnnexp: {len(unreadable)} of {len(rows)} runs' results.json could not be read as a run's record "
              f"(left out of the ranking; {SUMMARY_RUNS} lists them):\n"
              + "".join(f"  {printable(r['run'])}: {printable(r['reason'])}\n" for r in unreadable)
              + f"`python -m cnnexp.check {printable(args[0])}` checks every record", file=sys.stderr)


if __name__ == "__main__":
    from cnnexp.core.console import report_like_cat
    from cnnexp.core.stopping import run_command

    report_like_cat()
    run_command(main, "the summary files are each whole, old or new")
