"""Sweep summary: a table of every run in a sweep folder, sorted by validation score.

    python -m cnnexp.summary outputs/multirun/2026-11-25/10-31-02
"""

from __future__ import annotations

import sys
from pathlib import Path


def finish_sweep(sweep_dir: Path) -> None:
    """Called when a sweep ends: exit non-zero if any run failed."""
    from cnnexp.run_record import read_results

    runs = [read_results(d) for d in sorted(Path(sweep_dir).iterdir()) if d.is_dir()]
    failed = [r for r in runs if r and r.get("status") != "ok"]
    if failed:
        print(f"cnnexp: {len(failed)} of {len(runs)} runs failed (see {sweep_dir})", file=sys.stderr)
        raise SystemExit(1)
