"""The table of a sweep: every run's settings, metrics, time and status, best first; runs that
differ only in replicate keys (`sweep_options.replicate_keys`) grouped with mean ±
standard deviation; a plot of validation accuracy against what the sweep varies.

Printed as markdown (friendly numbers; what every row shares said once above it, so that it
fits 100 columns); written for machines as plain-number CSV, every column:
summary.csv (one row per setting, or per run when there are no replicates), summary_runs.csv
(one row per run), and summary.png. A sweep writes them when it ends; `python -m
cnnexp.summary SWEEP_FOLDER` rebuilds them from the runs' results.json at any time.
"""

from __future__ import annotations

import csv
import io
import shlex
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from cnnexp.core.files import write_atomic
from cnnexp.config.overrides import key_value
from cnnexp.records.folder import read_results
from cnnexp.search import study as search
from cnnexp.sweeps import stats as replicate_stats

METRICS = [("best_val_acc", "val acc"), ("test_acc", "test acc"), ("best_val_loss", "val loss"),
           ("test_loss", "test loss"), ("params", "params"), ("images_per_s", "images/s"), ("seconds", "time s")]
GROUPED = [("best_val_acc", "val acc"), ("test_acc", "test acc"), ("best_val_loss", "val loss"), ("test_loss", "test loss")]


def recorded_replicate_keys(sweep_dir: Path) -> List[str]:
    """The sweep's own `sweep_options.replicate_keys`, as its first launch recorded them
    (naming.recorded_sweep: a resume that names others does not regroup it); conf/train.yaml's
    default for a sweep recorded before the key existed."""
    from omegaconf import OmegaConf

    from cnnexp import CONF_DIR

    from cnnexp.sweeps.relaunch import recorded_sweep

    key = "sweep_options.replicate_keys"
    recorded = recorded_sweep(Path(sweep_dir))
    keys = OmegaConf.select(OmegaConf.load(recorded), key, default=None) if recorded.is_file() else None
    return list(keys if keys is not None else OmegaConf.select(OmegaConf.load(CONF_DIR / "train.yaml"), key))


def collect(sweep_dir: Path) -> List[Dict]:
    rows = []
    for run_dir in sorted(p for p in Path(sweep_dir).iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        results = read_results(run_dir)
        if results is None:
            results = {"status": "failed", "reason": "no results.json (the job did not start or was killed)"}
        elif not isinstance(results, dict) or not isinstance(results.get("overrides", []), list):
            results = {"status": "failed", "reason": "results.json is not a run record"}
        elif results.get("status") == "running":  # its lock's process gone: killed, not running (cnnexp.check)
            from cnnexp.run.resume import state

            results = {**results, "status": state(run_dir, results)}
        rows.append({"run": run_dir.name, **results, "overrides": own_overrides(run_dir, results.get("overrides", []))})
    return rows


def first_launch(record: Dict) -> Dict:
    """The record an extended run started from: each extension keeps the one it extended."""
    while isinstance(record.get("extends"), dict):
        record = record["extends"]
    return record


def own_overrides(run_dir: Path, overrides: List[str]) -> List[str]:
    """A run resumed by hand (`resume=…/kernel_size=3 trainer.max_epochs=3`) records the resume's
    overrides: its setting is its first launch's (.hydra/overrides.yaml) with the resume's changes."""
    later = [o for o in overrides if key_value(o)[0] != "resume"]
    if len(later) == len(overrides):
        return overrides
    from omegaconf import OmegaConf

    try:
        first = [str(o) for o in OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")]
    except Exception:  # a folder without Hydra's record of its launch: the resume's changes alone
        first = []
    changed = {key_value(o)[0] for o in later}
    return [o for o in first if key_value(o)[0] not in changed] + later


def swept(rows: List[Dict]) -> Dict[str, List[str]]:
    """key → the values it takes across the runs, for every override that varies."""
    values: Dict[str, List[str]] = {}
    for r in rows:
        for key, value in map(key_value, r.get("overrides", [])):
            if value not in values.setdefault(key, []):
                values[key].append(value)
    return {k: v for k, v in values.items() if len(v) > 1}


def setting(row: Dict, keys: Sequence[str]) -> Dict[str, str]:
    found = dict(map(key_value, row.get("overrides", [])))
    return {k: found.get(k, "") for k in keys}


def ranking(rows: List[Dict]) -> Tuple[str, str]:
    """(results key, "max" | "min"): the runs' own record of what "best" means (their monitor and
    mode, resolved once by the settings check); records from before it had none: val acc, up."""
    recorded = next((r for r in rows if r.get("status") == "ok" and r.get("monitor")), None)
    if recorded:
        return f"best_{recorded['monitor'].replace('/', '_')}", recorded["mode"]
    if any(r.get("best_val_acc") is not None for r in rows):
        return "best_val_acc", "max"
    return "best_val_loss", "min"


def _better_first(value, mode: str) -> float:
    """A sort key, largest first, for a value ranked by `mode`; missing values last."""
    if value is None:
        return float("-inf")
    return value if mode == "max" else -value


def _score(row: Dict, rank: Tuple[str, str]) -> float:
    return _better_first(row.get(rank[0]) if row.get("status") == "ok" else None, rank[1])


def _cell(key: str, value) -> str:
    if value is None:
        return ""
    if key in ("images_per_s", "seconds"):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else f"{value:.4f}"


def _reason(r: Dict) -> str:
    return str(r.get("reason", "")).splitlines()[0] if r.get("reason") else ""


def shown_status(r: Dict) -> str:
    """`rejected` for a search's setting that never trained (its shapes cannot work), apart from
    runs that failed; results.json keeps `failed` with `rejected: true`."""
    return "rejected" if r.get("rejected") else r.get("status", "?")


def run_table(rows: List[Dict]) -> Tuple[list, list, list]:
    """(header, friendly cells, plain values): one row per run, best first."""
    present = [(key, title) for key, title in METRICS if any(r.get(key) is not None for r in rows)]
    header = ["run", "status"] + [title for _, title in present] + ["reason"]
    friendly, plain = [], []
    rank = ranking(rows)
    for r in sorted(rows, key=lambda r: _score(r, rank), reverse=True):
        friendly.append([r["run"], shown_status(r), *(_cell(k, r.get(k)) for k, _ in present), _reason(r)])
        plain.append([r["run"], shown_status(r), *(r.get(k) for k, _ in present), _reason(r)])
    return header, friendly, plain


def groups(rows: List[Dict], replicate_keys: Sequence[str]) -> Dict[Tuple, List[Dict]]:
    """Runs that differ only in replicate keys, keyed by the other swept values."""
    keys = [k for k in swept(rows) if k not in replicate_keys]
    grouped: Dict[Tuple, List[Dict]] = {}
    for r in rows:
        grouped.setdefault(tuple(setting(r, keys).items()), []).append(r)
    return grouped


def _setting_name(key: Tuple) -> str:
    return ",".join(f"{k.split('.', 1)[-1]}={v}" for k, v in key) or "defaults"


# What a metric can be: an accuracy's interval (mean ± t·sd/√n) may reach past 1 with few seeds
# and a spread near the ceiling, a loss's below 0; it is clipped to the range, and says so.
RANGES = {"best_val_acc": (0.0, 1.0), "test_acc": (0.0, 1.0), "best_val_loss": (0.0, None), "test_loss": (0.0, None)}


def bounded(key: str, low: float | None, high: float | None) -> Tuple[float | None, float | None, bool, bool]:
    """(low, high, low clipped, high clipped): the interval inside what `key` can be."""
    floor, ceiling = RANGES.get(key, (None, None))
    cut_low = low is not None and floor is not None and low < floor
    cut_high = high is not None and ceiling is not None and high > ceiling
    return (floor if cut_low else low), (ceiling if cut_high else high), cut_low, cut_high


def end_cell(value: float | None, clipped: bool) -> str:
    """An interval end as the tables print it (summary, compare)."""
    return "" if value is None else f"{value:.4f}" + (" (clipped)" if clipped else "")


def _mean_sd_interval(key: str, values: List[float]) -> Tuple:
    """mean, sd, the 95 % interval's ends inside the metric's range (None with one run: no
    interval) and whether each end was clipped."""
    found = replicate_stats.interval(values)
    if found is None:
        return (None,) * 4 + (False, False)
    return (found.mean, found.sd, *bounded(key, found.low, found.high))  # sd None for one run


def setting_stats(rows: List[Dict], replicate_keys: Sequence[str]) -> List[Tuple[Tuple, int, int, Dict]]:
    """(setting key, runs, ok runs, {metric: _mean_sd_interval}) per setting, best mean first by the
    runs' monitor: the group table's rows, and the sweep's HParams sessions."""
    present = [k for k, _ in GROUPED if any(r.get(k) is not None for r in rows)]
    entries = []
    for key, members in groups(rows, replicate_keys).items():
        ok = [m for m in members if m.get("status") == "ok"]
        stats = {k: _mean_sd_interval(k, [m[k] for m in ok if m.get(k) is not None]) for k in present}
        entries.append((key, len(members), len(ok), stats))
    metric, mode = ranking(rows)
    return sorted(entries, key=lambda e: _better_first(e[3].get(metric, (None,))[0], mode), reverse=True)


STATS = ("mean", "sd", "95% low", "95% high")  # each metric's columns in summary.csv


def _grouped_present(rows: List[Dict]) -> list:
    return [(k, t) for k, t in GROUPED if any(r.get(k) is not None for r in rows)]


def group_columns(rows: List[Dict]) -> list:
    """summary.csv's header for grouped runs: n, ok, and every statistic of every metric."""
    return ["setting", "n", "ok"] + [f"{t} {s}" for _, t in _grouped_present(rows) for s in STATS]


def group_table(rows: List[Dict], replicate_keys: Sequence[str]) -> Tuple[list, list, list]:
    """(header, friendly, plain): one row per setting over its ok replicates, best mean first, by
    the runs' monitor. plain has summary.csv's columns (group_columns); the friendly table fits a
    terminal: `mean ± sd` per metric, and the 95 % interval of the metric that ranks them (an end
    clipped to its metric's range, RANGES, is marked `(clipped)`)."""
    present, metric = _grouped_present(rows), ranking(rows)[0]
    header = ["setting", "n", "ok"]
    for k, t in present:
        header += [t, f"{t} 95%"] if k == metric else [t]
    friendly, plain = [], []
    for key, n, n_ok, stats in setting_stats(rows, replicate_keys):
        name = _setting_name(key)
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


def fit_terminal(header: list, body: list, noun: str) -> str:
    """The markdown table with the columns that are the same in every row (past the first, which
    names the row) said once above it — `all runs: status=ok, params=1,379,557` — and empty ones
    left out, so that a typical sweep fits 100 columns. The CSVs keep every column."""
    same = [i for i in range(1, len(header)) if len(body) > 1 and len({row[i] for row in body}) == 1]
    said = ", ".join(f"{header[i]}={body[0][i]}" for i in same if body[0][i])
    kept = [i for i in range(len(header)) if i not in same]
    table = markdown([header[i] for i in kept], [[row[i] for i in kept] for row in body])
    return (f"all {noun}: {said}\n" if said else "") + table


def ok_by_setting(rows: List[Dict], replicate_keys: Sequence[str]) -> Dict[str, List[Dict]]:
    """Setting name (as the group table names it) → its runs that ended ok."""
    return {_setting_name(key): [m for m in members if m.get("status") == "ok"]
            for key, members in groups(rows, replicate_keys).items()}


def print_contrast(rows: List[Dict], replicate_keys: Sequence[str], ranked: Sequence[str]):
    """The best setting against the runner-up (the first two of `ranked`, the group table's
    order) on the metric that ranks them: Welch's test, and the seeds needed to tell them apart."""
    if len(ranked) < 2:
        return None
    metric = ranking(rows)[0]
    ok = ok_by_setting(rows, replicate_keys)
    found = replicate_stats.welch(*([r[metric] for r in ok[name] if r.get(metric) is not None] for name in ranked[:2]))
    print(f"best vs runner-up by {dict(GROUPED).get(metric, metric)}: {ranked[0]} − {ranked[1]} = "
          + (found.text() if found else "no test (each needs 2 or more runs that ended ok)"))
    return found


def markdown(header: list, body: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(lines)


def _csv(path: Path, header: list, plain: list) -> None:
    """Plain numbers at full precision: what csv readers, pandas and spreadsheets parse."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in plain])
    write_atomic(path, text.getvalue())


def write_summary(sweep_dir: Path, replicate_keys: Sequence[str] | None = None, write: bool = True) -> List[Dict]:
    """Print the tables; with `write`, save them, the plot and the TensorBoard summary too."""
    sweep_dir = Path(sweep_dir)
    replicate_keys = recorded_replicate_keys(sweep_dir) if replicate_keys is None else replicate_keys
    rows = collect(sweep_dir)
    header, friendly, plain = run_table(rows)
    if write:
        _csv(sweep_dir / "summary_runs.csv", header, plain)
    replicated = any(len(m) > 1 for m in groups(rows, replicate_keys).values()) and \
        any(k in swept(rows) for k in replicate_keys)
    if replicated:
        g_header, g_friendly, g_plain = group_table(rows, replicate_keys)
        print(fit_terminal(g_header, g_friendly, "settings"))
        clipped = " (an end past what the metric can be, an accuracy above 1 or a loss below 0, is clipped to it)" \
            if any("(clipped)" in c for row in g_friendly for c in row) else ""
        print(f"\n(mean ± sd over {', '.join(replicate_keys)}; 95%: the mean's Student-t interval{clipped}; "
              "every statistic in summary.csv, each run in summary_runs.csv)")
        print_contrast(rows, replicate_keys, [row[0] for row in g_plain])
        if write:
            _csv(sweep_dir / "summary.csv", group_columns(rows), g_plain)
    else:
        print(fit_terminal(header, friendly, "runs"))
        if write:
            _csv(sweep_dir / "summary.csv", header, plain)
    extended = [r for r in rows if r.get("extends") and r.get("status") == "ok"]
    if extended:  # its row is no longer the sweep's setting alone
        print("\nnote: extended by a resume after the sweep: " + "; ".join(
            f"{r['run']} ({first_launch(r).get('epochs')} → {r.get('epochs')} epochs)" for r in extended)
            + " — ranked with the others as it is now")
    print_best(rows, replicate_keys if replicated else ())
    if write:
        figures = plot(sweep_dir, rows, replicate_keys)
        _log_to_tensorboard(sweep_dir, rows, figures, replicate_keys if replicated else ())
    if search.study_record(sweep_dir) is not None:  # sqlite, journal or a database
        search.report(sweep_dir, write)
    return rows


def best_setting(rows: List[Dict], replicate_keys: Sequence[str] = ()) -> Tuple[str, List[str]] | None:
    """(name, overrides) of the best setting: by its mean over the replicates when there are
    replicate keys (the command then leaves them out), else the best run. None if nothing ended ok."""
    key, mode = ranking(rows)
    ok = [r for r in rows if r.get("status") == "ok" and r.get(key) is not None]
    if not ok:
        return None
    if not replicate_keys:
        best = max(ok, key=lambda r: _score(r, (key, mode)))
        return best["run"], list(best.get("overrides", []))
    name, chosen = max(groups(ok, replicate_keys).items(),
                       key=lambda g: _better_first(statistics.mean(r[key] for r in g[1]), mode))
    kept = [o for o in chosen[0].get("overrides", []) if key_value(o)[0] not in replicate_keys]
    return f"{_setting_name(name)} (mean of {len(chosen)})", kept


def print_best(rows: List[Dict], replicate_keys: Sequence[str] = ()) -> None:
    found = best_setting(rows, replicate_keys)
    if found is not None:
        label = "best setting" if replicate_keys else "best run"
        print(f"\n{label}: {found[0]}, by {ranking(rows)[0]} ({ranking(rows)[1]}); on its own:\n"
              "  python -m cnnexp.train " + " ".join(shlex.quote(o) for o in found[1]))


def declared_order(sweep_dir: Path) -> Dict[str, List[str]]:
    """key → its values in the order the sweep gave them (multirun.yaml: `model.stride=2,1`,
    `choice(…)`), so that a categorical axis reads as the user wrote it; {} where unknown."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    try:
        recorded = OmegaConf.load(Path(sweep_dir) / "multirun.yaml")
        params = OmegaConf.select(recorded, "hydra.sweeper.params", default=None) or {}
        lines = list(recorded.hydra.overrides.task) + [f"{k}={v}" for k, v in params.items()]
        parsed = OverridesParser.create().parse_overrides(lines)
    except Exception:  # an older or hand-made folder: the runs' own order
        return {}
    return {o.get_key_element().lstrip("+~"): list(o.sweep_string_iterator()) for o in parsed
            if o.is_sweep_override() and not o.is_interval_sweep()}


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


# A swept key whose values span a decade or more (a learning rate, a batch size) reads on a log axis.
DECADE = 10.0


def logarithmic(values: Sequence[float]) -> bool:
    """Whether a numeric axis over `values` is drawn logarithmic: all positive, spanning a factor of
    DECADE or more (0.05 / 0.0005 is 99.99… in floating point: a hair of tolerance)."""
    return len(values) > 1 and min(values) > 0 and max(values) / min(values) >= DECADE * (1 - 1e-9)


def fit_width(title, figure, share: float = 0.98) -> None:
    """Break a title (a matplotlib Text) onto more lines until it fits `share` of the figure's
    width — TensorBoard's cards and summary.png are about 500 px wide: first at its dash, then
    between words."""
    import textwrap

    renderer = figure.canvas.get_renderer()
    text = title.get_text()
    lines = text.replace(" — ", "\n— ", 1).split("\n")
    width = max(map(len, lines))
    while title.get_window_extent(renderer).width > share * figure.bbox.width and width > 12:
        title.set_text("\n".join(textwrap.fill(line, width) for line in lines))
        width = int(width * 0.9)


def plot(sweep_dir: Path, rows: List[Dict], replicate_keys: Sequence[str]) -> Dict[str, object]:
    """summary.png: validation accuracy (or loss) against each swept key — a numeric axis for
    numbers (logarithmic where they span a decade or more: logarithmic()), the sweep's own order
    for categories — as the mean of a setting's ok runs, with its 95 % Student-t interval where it
    has more than one (n beside the point; the same interval as the table's).
    Settings that failed (✕) or were rejected by the shape check before training (▽) are marked
    along the bottom. Two keys of a small grid: a heatmap. Returns the figures for TensorBoard,
    whose image cards are a few hundred pixels wide: the whole one, or one per key."""
    keys = [k for k in swept(rows) if k not in replicate_keys]
    if not keys:
        return {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metric, _ = ranking(rows)
    label = {"best_val_acc": "validation accuracy", "best_val_loss": "validation loss"}.get(
        metric, metric.replace("best_", "").replace("_", "/"))
    order = declared_order(sweep_dir)
    values = {k: [v for v in order.get(k, []) if v in vs] + [v for v in vs if v not in order.get(k, [])]
              for k, vs in swept(rows).items()}
    replicated = [k for k in replicate_keys if k in swept(rows)]

    def stats(select) -> Dict:
        picked = [r for r in rows if select(setting(r, keys))]
        ok = [r[metric] for r in picked if r.get("status") == "ok" and r.get(metric) is not None]
        iv = replicate_stats.interval(ok)
        low, high, _, _ = bounded(metric, iv and iv.low, iv and iv.high)  # as the table's
        return {"mean": np.nan if iv is None else iv.mean, "low": low, "high": high, "n": len(ok),
                "failed": sum(1 for r in picked if shown_status(r) not in ("ok", "rejected", "pruned")),
                "rejected": sum(1 for r in picked if shown_status(r) == "rejected")}

    plt.rcParams.update({"font.size": 11})
    drawn = search.study_record(sweep_dir) is not None  # a search's values are draws, not a grid's list
    small_grid = len(keys) == 2 and all(len(values[k]) <= 8 for k in keys) and not drawn
    if small_grid:
        (ka, va), (kb, vb) = (keys[0], values[keys[0]]), (keys[1], values[keys[1]])
        fig, ax = plt.subplots(figsize=(1.6 * len(vb) + 3, 1.1 * len(va) + 2.2))
        grid = np.full((len(va), len(vb)), np.nan)
        for i, a in enumerate(va):
            for j, b in enumerate(vb):
                p = stats(lambda s, a=a, b=b: s[ka] == a and s[kb] == b)
                grid[i, j] = p["mean"]
                text = "rejected" if p["rejected"] and not p["n"] else "failed" if p["failed"] and not p["n"] \
                    else "" if np.isnan(p["mean"]) else f"{p['mean']:.4f}" + (
                        f"\n[{p['low']:.4f}, {p['high']:.4f}] (n={p['n']})" if p["n"] > 1 else "")
                ax.text(j, i, text, ha="center", va="center", fontsize=9,
                        color={"failed": "red", "rejected": "dimgray"}.get(text, "black"))
        image = ax.imshow(grid, cmap="viridis", aspect="auto", alpha=0.85)
        fig.colorbar(image, ax=ax, label=label)
        ax.set_xticks(range(len(vb)), vb)
        ax.set_yticks(range(len(va)), va)
        ax.set_xlabel(kb)
        ax.set_ylabel(ka)
    else:
        columns = min(len(keys), 2)
        lines = -(-len(keys) // columns)
        fig, axes = plt.subplots(lines, columns, figsize=(5.2 * columns, 3.8 * lines), squeeze=False)
        for ax in axes.flat[len(keys):]:
            ax.set_visible(False)
        for ax, key in zip(axes.flat, keys):
            _panel(ax, key, values[key], [stats(lambda s, v=v: s[key] == v) for v in values[key]], metric, np, drawn)
            ax.set_ylabel(label if len(keys) == 1 else f"{label}\n(mean over the other keys)", fontsize=10)
    n_ok = [stats(lambda s, r=r: all(s[k] == v for k, v in setting(r, keys).items()))["n"] for r in rows]
    what = f"mean and 95 % interval over {', '.join(replicated)}" if replicated else "one run per setting"
    if replicated and max(n_ok, default=0) > 1:
        what += f" (n = {min(n_ok)}–{max(n_ok)} ok runs)" if min(n_ok) != max(n_ok) else f" (n = {max(n_ok)} each)"
    fit_width(fig.suptitle(f"{Path(sweep_dir).name}: best {label} — {what}", fontsize=11), fig)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    write_atomic(Path(sweep_dir) / "summary.png", buffer.getvalue())
    if small_grid or len(keys) == 1:
        return {"sweep/summary": fig}
    plt.close(fig)
    figures = {}
    for key in keys:
        figures[f"sweep/summary_{key}"], ax = plt.subplots(figsize=(5.5, 4))
        _panel(ax, key, values[key], [stats(lambda s, v=v: s[key] == v) for v in values[key]], metric, np, drawn)
        ax.set_ylabel(f"{label}\n(mean over the other keys)", fontsize=10)
        fit_width(ax.set_title(f"best {label} — {what}", fontsize=10), figures[f"sweep/summary_{key}"])
        figures[f"sweep/summary_{key}"].tight_layout()
    return figures


def _panel(ax, key: str, values: List[str], points: List[Dict], metric: str, np, drawn: bool = False) -> None:
    """One key: numbers on a numeric axis, categories in their order; failures marked below. A
    grid's few numbers are each a tick; a search's draws (`drawn`) fall between the axis's own."""
    numbers = [_number(v) for v in values]
    numeric = all(n is not None for n in numbers) and len(values) > 1
    x = np.array(numbers, dtype=float) if numeric else np.arange(len(values), dtype=float)
    if numeric and logarithmic(x):
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_xscale("log")  # ticks at 1, 2, 5 × 10ⁿ over two decades or less, else 10ⁿ; plain numbers
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if max(x) / min(x) <= 100 else (1.0,)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    mean = np.array([p["mean"] for p in points])
    order = [i for i in np.argsort(x) if not np.isnan(mean[i])]
    joined = not numeric or len(values) <= 8  # a grid's values: a line; a search's many draws: points
    ax.plot(x[order], mean[order], "o-" if joined else "o", color="tab:blue", markersize=5, label="mean of ok runs")
    spread = [(i, p) for i, p in enumerate(points) if p["n"] > 1 and p["low"] is not None]
    if spread:
        below = [p["mean"] - p["low"] for _, p in spread]  # inside the metric's range: bounded() in stats()
        above = [p["high"] - p["mean"] for _, p in spread]
        ax.errorbar(x[[i for i, _ in spread]], [p["mean"] for _, p in spread], yerr=[below, above], fmt="none",
                    ecolor="tab:blue", capsize=4, label="95 % interval of its n runs")
        for i, p in spread:  # the rightmost one's to its left: inside the frame
            last = x[i] == max(x[j] for j, _ in spread)
            ax.annotate(f"n={p['n']}", (x[i], p["mean"]), textcoords="offset points", xytext=(-5 if last else 5, 4),
                        ha="right" if last else "left", fontsize=8)
    for kind, marker, color in (("failed", "x", "red"), ("rejected", "v", "dimgray")):
        hit = [i for i, p in enumerate(points) if p[kind]]
        if hit:
            ax.plot(x[hit], [0.02] * len(hit), marker, color=color, markersize=8, linestyle="none",
                    transform=ax.get_xaxis_transform(), clip_on=False,
                    label=f"{kind} ({sum(points[i][kind] for i in hit)})")
    if not numeric or (len(values) <= 8 and not drawn):
        ax.set_xticks(x, values if not numeric else [f"{n:g}" for n in x])
        ax.minorticks_off()
    ax.set_xlabel(key)
    ax.grid(alpha=0.3)
    if any(p["failed"] or p["rejected"] for p in points) or spread:
        ax.legend(fontsize=8, loc="best")


def _typed(text: str):
    """An override's value as the runs log it in HParams: a number where it reads as one."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


INTERVAL_PARTS = (("mean", "mean"), ("low", "95% low"), ("high", "95% high"))  # setting/<metric>_<part>: its title


def _log_to_tensorboard(sweep_dir: Path, rows: List[Dict], figures: Dict[str, object],
                        replicate_keys: Sequence[str] = ()) -> None:
    """The sweep's own TensorBoard run, SWEEP/_sweep: the summary figure, and the HParams experiment —
    the swept keys first, with their values in the sweep's order, then what every run logs, and the
    metrics by name — the one experiment in the folder (cnnexp.board). With replicates, each setting
    is a session too (SWEEP/_sweep/<setting>, status `setting`): the table's mean and 95 % interval
    as metrics, so HParams compares settings as the table does, not only runs."""
    from omegaconf import OmegaConf
    from tensorboard.plugins.hparams import plugin_data_pb2

    from cnnexp.tracking.events import SWEEP_RUN, Events, hparams
    from cnnexp.tracking.hparams import HPARAM_METRICS, flat_hparams

    domains = {k: [_typed(v) for v in vs] for k, vs in swept(rows).items()}
    metrics = {f"run/{m}": 0.0 for m in HPARAM_METRICS if any(r.get(m) is not None for r in rows)}
    replicated = any(k in domains for k in replicate_keys) and any(
        len(m) > 1 for m in groups(rows, replicate_keys).values())
    settings = setting_stats(rows, replicate_keys) if replicated else []
    titles = {}  # setting/<metric>_<part> → what HParams calls it
    for metric, title in GROUPED:
        for part, words in INTERVAL_PARTS:
            if any(stats[metric][0] is not None for *_, stats in settings if metric in stats):
                titles[f"setting/{metric}_{part}"] = f"setting {title} {words}"
    if settings:
        titles["setting/n"] = "setting n (ok runs)"
    metrics.update({tag: 0.0 for tag in titles})
    configs = [Path(sweep_dir) / r["run"] / "config.yaml" for r in rows]
    first = next((p for p in configs if p.is_file()), None)
    every = flat_hparams(OmegaConf.to_container(OmegaConf.load(first)), list(domains)) if first else {}
    with Events(Path(sweep_dir) / SWEEP_RUN) as writer:
        for name, figure in figures.items():  # each closed once written
            writer.figure(name, figure)
        if domains:  # swept keys first, with their values; then every other setting the runs log
            values = {**{k: d[0] for k, d in domains.items()}, **{k: v for k, v in every.items() if k not in domains}}
            logged = sorted({r["status"] for r in rows if r.get("status") in ("ok", "pruned")}) or ["ok"]
            values["status"] = logged[0]  # each run logs its own: a search's pruned trials filter apart
            discrete = {k: d for k, d in domains.items() if len({type(v) for v in d}) == 1}  # 0,same: no domain
            statuses = logged + (["setting"] if settings else [])
            experiment, _, _ = hparams(values, metrics, domains={**discrete, "status": statuses})
            plugin = experiment.value[0].metadata.plugin_data
            data = plugin_data_pb2.HParamsPluginData.FromString(plugin.content)
            for info in data.experiment.hparam_infos:  # TensorBoard lists the keys that differ first
                info.differs = info.name in domains
            for info in data.experiment.metric_infos:
                info.display_name = titles.get(info.name.tag) or info.name.tag.split("/", 1)[1].replace("_", " ")
                if info.name.tag.startswith("setting/") and info.name.tag.endswith(("_low", "_high")):
                    floor, ceiling = RANGES.get(info.name.tag[len("setting/"):].rsplit("_", 1)[0], (None, None))
                    inside = f", clipped to [{floor:g}, {ceiling:g}]" if ceiling is not None else \
                        f", clipped at {floor:g}" if floor is not None else ""
                    info.description = f"the mean's 95 % Student-t interval over {', '.join(replicate_keys)}{inside}"
            plugin.content = data.SerializeToString()
            writer.summary(experiment)
            for key, _, n_ok, stats in settings:
                _log_setting(Path(sweep_dir) / SWEEP_RUN / _setting_name(key), {
                    **{k: v for k, v in values.items() if k not in replicate_keys},
                    **{k: _typed(v) for k, v in key}, "status": "setting"},
                    {"setting/n": float(n_ok), **{f"setting/{m}_{part}": v for m, st in stats.items()
                     for (part, _), v in zip(INTERVAL_PARTS, (st[0], st[2], st[3])) if v is not None}})


def _log_setting(folder: Path, values: Dict, metrics: Dict[str, float]) -> None:
    """One setting's HParams session: its keys, and its mean and interval ends as metrics (rewritten
    whole by each summary, so a rebuilt summary shows today's numbers once)."""
    from cnnexp.tracking.events import Events, hparams

    for old in folder.glob("events.out.tfevents.*"):
        old.unlink()
    with Events(folder) as writer:
        _, start, end = hparams(values, metrics)
        writer.summary(start)
        for tag, value in metrics.items():
            writer.scalar(tag, value)
        writer.summary(end)


def finish_sweep(sweep_dir: Path, replicate_keys: Sequence[str] | None = None, write: bool = True) -> None:
    """When a sweep ends: print and save the tables and plot (a resume that ran nothing only
    prints them); exit 1 if a run did not end ok — except, in a search, trials pruned or rejected
    by the shape check: those are how a search works."""
    rows = write_summary(sweep_dir, replicate_keys, write)
    counts = Counter(shown_status(r) for r in rows)
    print(f"\nsweep folder: {sweep_dir} (summary.csv, summary.png) — "
          + ", ".join(f"{n} {status}" for status, n in sorted(counts.items(), key=lambda c: c[0] != "ok")))
    not_ok = [r for r in rows if r.get("status") not in ("ok", "pruned") and not r.get("rejected")]
    if not not_ok and not any(r.get("status") in ("ok", "pruned") for r in rows):
        print("cnnexp: no run trained: every setting failed the shape check; widen the space to settings that fit "
              "(python -m cnnexp.shapes shows a setting's table)", file=sys.stderr)
        raise SystemExit(1)
    if not_ok:
        kinds = " or ".join(sorted({r.get("status", "?") for r in not_ok}))
        print(f"cnnexp: {len(not_ok)} of {len(rows)} runs {kinds}:\n"  # each reason's first line, whole
              + "\n".join(f"  {r['run']}: {_reason(r) or r.get('status')}" for r in not_ok), file=sys.stderr)
        raise SystemExit(1)
