"""A sweep's tables: one row per run, best first, and — with replicates — one row per setting
(mean ± sd, the 95 % interval of the metric that ranks them), the best against the runner-up,
and the best setting's command.

Printed as markdown (friendly numbers; what every row shares said once above it, so that it
fits 100 columns); written for machines as plain-number CSV, every column."""

from __future__ import annotations

import csv
import io
import shlex
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from cnnexp.core.errors import printable  # noqa: F401 — its cells, and compare's and summary's
from cnnexp.config.compose import as_typed
from cnnexp.core.catalogue import RECORDED, recorded, title_of
from cnnexp.core.console import WIDTH, folded, shell_lines
from cnnexp.core.files import write_atomic
from cnnexp.records.folder import SUMMARY_RUNS, shown_status
from cnnexp.sweeps import stats as replicate_stats
from cnnexp.sweeps.collect import ranking, score
from cnnexp.sweeps.replicates import best_setting, ok_by_setting, present_quality, setting_name, setting_stats

STATS = ("mean", "sd", "95% low", "95% high")
CLIPPED = "*"  # an interval's end clipped to what its metric can be; the note under the table says so  # each metric's columns in summary.csv


def cell(key: str, value) -> str:
    if value is None:
        return ""
    decimals = getattr(recorded(key), "decimals", None)
    if decimals is not None:
        return f"{value:,.{decimals}f}"
    return f"{value:,}" if isinstance(value, int) else f"{value:.4f}"


def reason(r: Dict) -> str:
    """The first line of why a run stopped."""
    return printable(str(r.get("reason", "")).splitlines()[0]) if str(r.get("reason") or "").strip() else ""


def run_table(rows: List[Dict]) -> Tuple[list, list, list]:
    """(header, friendly cells, plain values): one row per run, best first."""
    present = [(m.key, m.title) for m in RECORDED if any(r.get(m.key) is not None for r in rows)]
    header = ["run", "status"] + [title for _, title in present] + ["reason"]
    friendly, plain = [], []
    rank = ranking(rows)
    for r in sorted(rows, key=lambda r: score(r, rank), reverse=True):
        friendly.append([r["run"], shown_status(r), *(cell(k, r.get(k)) for k, _ in present), reason(r)])
        plain.append([r["run"], shown_status(r), *(r.get(k) for k, _ in present), reason(r)])
    return header, friendly, plain


def end_cell(value: float | None, clipped: bool) -> str:
    """An interval end as the tables print it (summary, compare)."""
    return "" if value is None else f"{value:.4f}" + (CLIPPED if clipped else "")


def group_columns(rows: List[Dict]) -> list:
    """summary.csv's header for grouped runs: n, ok, and every statistic of every metric."""
    return ["setting", "n", "ok"] + [f"{t} {s}" for _, t in present_quality(rows) for s in STATS]


def group_table(rows: List[Dict], replicate_keys: Sequence[str]) -> Tuple[list, list, list]:
    """(header, friendly, plain): one row per setting over its ok replicates, best mean first, by
    the runs' monitor. plain has summary.csv's columns (group_columns); the friendly table fits a
    terminal: `mean ± sd` per metric, and the 95 % interval of the metric that ranks them (an end
    clipped to its metric's range, the catalogue's, is marked `*`, said under the table: `(clipped)`
    made such a row 107 columns wide)."""
    present, metric = present_quality(rows), ranking(rows)[0]
    header = ["setting", "n", "ok"]
    for k, t in present:
        header += [t, f"{t} 95%"] if k == metric else [t]
    friendly, plain = [], []
    for key, n, n_ok, stats in setting_stats(rows, replicate_keys):
        name = setting_name(key)
        plain.append([name, n, n_ok, *(v for k, _ in present for v in stats[k][:4])])
        cells = [name, str(n), str(n_ok)]
        for k, _ in present:
            mean, sd, low, high, cut_low, cut_high = stats[k]
            cells.append("" if mean is None else f"{mean:.4f}" + ("" if sd is None else f" ± {sd:.4f}"))
            if k == metric:
                cells.append("" if mean is None else "1 run — no interval" if low is None else
                             f"{end_cell(low, cut_low)}–{end_cell(high, cut_high)}")
        friendly.append(cells)
    return header, friendly, plain


def markdown(header: list, body: list) -> str:
    lines = ["| " + " | ".join(map(printable, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(printable(c).replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(lines)


def fit_terminal(header: list, body: list, noun: str) -> str:
    """The markdown table with the columns that are the same in every row (past the first, which
    names the row) said once above it — `all runs: status=ok, params=1,379,557` — and empty ones
    left out, so that a typical sweep fits 100 columns. Still wider: reasons are cut (`…`); then
    said under the table; then the rightmost numbers are left to the CSV, and the note says which.
    The CSVs keep every column."""
    same = [i for i in range(1, len(header)) if len(body) > 1 and len({row[i] for row in body}) == 1]
    said = printable(", ".join(f"{header[i]}={body[0][i]}" for i in same if body[0][i]))
    kept = [i for i in range(len(header)) if i not in same]
    rows = [[row[i] for i in kept] for row in body]
    columns = [header[i] for i in kept]
    whole = [printable(row[-1]) for row in rows]  # each reason, before any is cut
    reasons = columns[-1] == "reason"
    cut = reasons and _cut_reasons(rows)
    table = markdown(columns, rows)
    note = f"\n(reasons cut to fit {WIDTH} columns: each whole in {SUMMARY_RUNS})" if cut else ""
    if reasons and _widest(table) > WIDTH:  # no room for a reason: each said under the table instead
        columns, rows = columns[:-1], [row[:-1] for row in rows]
        note = "\n" + "\n".join(folded(f"  {row[0]}: {why}", "    ") for row, why in zip(rows, whole) if why)
        table = markdown(columns, rows)
    left_out = []
    while _widest(table) > WIDTH and len(columns) > 3:  # the rightmost numbers: in the CSV only
        left_out.insert(0, columns[-1])
        columns, rows = columns[:-1], [row[:-1] for row in rows]
        table = markdown(columns, rows)
    if left_out:
        note = f"\n({', '.join(left_out)}: left out to fit {WIDTH} columns; in {SUMMARY_RUNS})" + note
    return (f"all {noun}: {said}\n" if said else "") + table + note


def _widest(text: str) -> int:
    return max(map(len, text.splitlines()))


def _cut_reasons(rows: list) -> bool:
    """The last cell of each row (its reason) cut, with `…`, so that the row fits WIDTH columns
    (at least 24 columns of reason are kept); whether any was cut."""
    cut = False
    for row in rows:
        room = max(24, WIDTH - len(markdown([""] * len(row), [row[:-1] + [""]]).splitlines()[-1]))
        text = printable(row[-1])
        if len(text) > room:
            row[-1], cut = text[:room - 1].rstrip() + "…", True
    return cut


def write_csv(path: Path, header: list, plain: list) -> None:
    """Plain numbers at full precision: what csv readers, pandas and spreadsheets parse."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in plain])
    write_atomic(path, text.getvalue())


def print_contrast(rows: List[Dict], replicate_keys: Sequence[str], ranked: Sequence[str]):
    """The best setting against the runner-up (the first two of `ranked`, the group table's
    order) on the metric that ranks them: Welch's test, and the seeds needed to tell them apart."""
    if len(ranked) < 2:
        return None
    metric = ranking(rows)[0]
    ok = ok_by_setting(rows, replicate_keys)
    found = replicate_stats.welch(*([r[metric] for r in ok[name] if r.get(metric) is not None] for name in ranked[:2]))
    print(folded(f"best vs runner-up by {title_of(metric)}: {ranked[0]} − {ranked[1]} = "
                 + (found.text() if found else "no test (each needs 2 or more runs that ended ok)"), "  "))
    return found


def print_best(rows: List[Dict], replicate_keys: Sequence[str] = ()) -> None:
    """The best run (or setting) and its command; a tie on the ranking metric is said, and broken
    by a stated rule: the first by name, as the table lists them."""
    found = best_setting(rows, replicate_keys)
    if found is not None:
        label = "best setting" if replicate_keys else "best run"
        metric, mode = ranking(rows)
        tied = tied_with_best(rows, replicate_keys)
        tie = f" (tied with {tied} other{'s' if tied > 1 else ''}: the first by name)" if tied else ""
        print("\n" + folded(f"{label}: {printable(found[0])}, by {printable(metric)} ({mode}){tie}; on its own:", "  ")
              + "\n" + shell_lines(["python", "-m", "cnnexp.train", *(printable(shlex.quote(o)) for o in as_typed(found[1]))]))


def tied_with_best(rows: List[Dict], replicate_keys: Sequence[str] = ()) -> int:
    """How many other runs (settings: by their mean) hold the best value of the ranking metric."""
    import statistics

    key, mode = ranking(rows)
    ok = [r for r in rows if r.get("status") == "ok" and r.get(key) is not None]
    if replicate_keys:
        values = [statistics.mean(r[key] for r in g) for g in ok_by_setting(ok, replicate_keys).values() if g]
    else:
        values = [r[key] for r in ok]
    if not values:
        return 0
    best = max(values) if mode == "max" else min(values)
    return sum(1 for v in values if v == best) - 1
