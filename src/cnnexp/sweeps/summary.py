"""The table of a sweep: every run's settings, metrics, time and status, best first.

Printed as markdown and written to summary.csv in the sweep folder; a sweep writes it when it
ends, and `python -m cnnexp.summary SWEEP_FOLDER` rebuilds it from the runs' results.json.
"""

from __future__ import annotations

import csv
import io
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List

from cnnexp.files import write_atomic
from cnnexp.run_folder import read_results

METRICS = [("best_val_acc", "val acc"), ("test_acc", "test acc"), ("best_val_loss", "val loss"),
           ("test_loss", "test loss"), ("params", "params"), ("images_per_s", "images/s"), ("seconds", "time s")]


def collect(sweep_dir: Path) -> List[Dict]:
    rows = []
    for run_dir in sorted(p for p in Path(sweep_dir).iterdir() if p.is_dir() and not p.name.startswith(".")):
        results = read_results(run_dir)
        if results is None:
            results = {"status": "failed", "reason": "no results.json (the job did not start or was killed)"}
        rows.append({"run": run_dir.name, **results})
    return rows


def _score(row: Dict) -> float:
    if row.get("status") != "ok":
        return float("-inf")
    if row.get("best_val_acc") is not None:
        return row["best_val_acc"]
    return -(row.get("best_val_loss") or float("inf"))


def _cell(key: str, value) -> str:
    if value is None:
        return ""
    if key in ("images_per_s", "seconds"):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else f"{value:.4f}"


def table_rows(rows: List[Dict]) -> tuple[list, list]:
    present = [(key, title) for key, title in METRICS if any(r.get(key) is not None for r in rows)]
    header = ["run", "status"] + [title for _, title in present] + ["reason"]
    body = []
    for r in sorted(rows, key=_score, reverse=True):
        cells = [r["run"], r.get("status", "?")]
        cells += [_cell(key, r.get(key)) for key, _ in present]
        cells.append(str(r.get("reason", "")).splitlines()[0][:160] if r.get("reason") else "")
        body.append(cells)
    return header, body


def markdown(header: list, body: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(lines)


def write_summary(sweep_dir: Path) -> List[Dict]:
    rows = collect(sweep_dir)
    header, body = table_rows(rows)
    print(markdown(header, body))
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(body)
    write_atomic(Path(sweep_dir) / "summary.csv", text.getvalue())
    return rows


def finish_sweep(sweep_dir: Path) -> None:
    """When a sweep ends: print and save the table; exit 1 if any run did not end ok."""
    rows = write_summary(sweep_dir)
    counts = Counter(r.get("status", "?") for r in rows)
    print(f"\nsweep folder: {sweep_dir} (summary.csv) — "
          + ", ".join(f"{n} {status}" for status, n in sorted(counts.items(), key=lambda c: c[0] != "ok")))
    not_ok = [r for r in rows if r.get("status") != "ok"]
    if not_ok:
        kinds = " or ".join(sorted({r.get("status", "?") for r in not_ok}))
        print(f"cnnexp: {len(not_ok)} of {len(rows)} runs {kinds}: "
              + "; ".join(f"{r['run']}: {str(r.get('reason', r.get('status')))[:120]}" for r in not_ok), file=sys.stderr)
        raise SystemExit(1)
