"""summary.png: the metric that ranks a sweep's runs against each key it varies, and the same
figures for the sweep's TensorBoard run (its image cards are a few hundred pixels wide)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Sequence

from cnnexp.core.catalogue import label_of
from cnnexp.core.figures import pyplot, save_png
from cnnexp.records.folder import REJECTED, shown_status, summary_plot_path, went_wrong
from cnnexp.search.study import is_search_folder
from cnnexp.sweeps import stats as replicate_stats
from cnnexp.sweeps.collect import declared_order, ranking, setting, swept
from cnnexp.sweeps.replicates import bounded

# A swept key whose values span a decade or more (a learning rate, a batch size) reads on a log axis.
DECADE = 10.0
MARKS = (("failed", "x", "red"), (REJECTED, "v", "dimgray"))  # along the bottom: settings with no ok run


def _number(text: str) -> float | None:
    """A value as a number on the axis; None for text — and for nan and inf, which no axis holds."""
    import math

    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


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


def _point(rows: List[Dict], keys: Sequence[str], metric: str, select: Callable[[Dict], bool]) -> Dict:
    """The runs whose setting `select` picks: the mean and 95 % interval of their ok runs (inside
    the metric's range, as the table's), their number, and how many failed or were rejected."""
    import numpy as np

    picked = [r for r in rows if select(setting(r, keys))]
    ok = [r[metric] for r in picked if r.get("status") == "ok" and r.get(metric) is not None]
    iv = replicate_stats.interval(ok)
    low, high, _, _ = bounded(metric, iv and iv.low, iv and iv.high)
    return {"mean": np.nan if iv is None else iv.mean, "low": low, "high": high, "n": len(ok),
            "failed": sum(1 for r in picked if went_wrong(r)),
            REJECTED: sum(1 for r in picked if shown_status(r) == REJECTED)}


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
    plt = pyplot()
    metric, _ = ranking(rows)
    label = label_of(metric)
    order = declared_order(sweep_dir)
    values = {k: [v for v in order.get(k, []) if v in vs] + [v for v in vs if v not in order.get(k, [])]
              for k, vs in swept(rows).items()}
    replicated = [k for k in replicate_keys if k in swept(rows)]

    def point(select: Callable[[Dict], bool]) -> Dict:
        return _point(rows, keys, metric, select)

    plt.rcParams.update({"font.size": 11})
    drawn = is_search_folder(sweep_dir)  # a search's values are draws, not a grid's list
    small_grid = len(keys) == 2 and all(len(values[k]) <= 8 for k in keys) and not drawn
    if small_grid:
        fig = _heatmap(keys, values, point, label)
    else:
        fig = _panels(keys, values, point, metric, label, drawn)
    n_ok = [point(lambda s, r=r: all(s[k] == v for k, v in setting(r, keys).items()))["n"] for r in rows]
    what = f"mean and 95 % interval over {', '.join(replicated)}" if replicated else "one run per setting"
    if replicated and max(n_ok, default=0) > 1:
        what += f" (n = {min(n_ok)}–{max(n_ok)} ok runs)" if min(n_ok) != max(n_ok) else f" (n = {max(n_ok)} each)"
    fit_width(fig.suptitle(f"{Path(sweep_dir).name}: best {label} — {what}", fontsize=11), fig)
    fig.tight_layout()
    save_png(fig, summary_plot_path(sweep_dir), close=False)  # TensorBoard's card next
    if small_grid or len(keys) == 1:
        return {"sweep/summary": fig}
    plt.close(fig)
    return _per_key(keys, values, point, metric, label, what, drawn)


def _heatmap(keys: Sequence[str], values: Dict[str, List[str]], point, label: str):
    """Two keys of a small grid: each cell a setting's mean (its interval and n beneath)."""
    import numpy as np

    plt = pyplot()
    (ka, va), (kb, vb) = (keys[0], values[keys[0]]), (keys[1], values[keys[1]])
    fig, ax = plt.subplots(figsize=(1.6 * len(vb) + 3, 1.1 * len(va) + 2.2))
    grid = np.full((len(va), len(vb)), np.nan)
    for i, a in enumerate(va):
        for j, b in enumerate(vb):
            p = point(lambda s, a=a, b=b: s[ka] == a and s[kb] == b)
            grid[i, j] = p["mean"]
            text = REJECTED if p[REJECTED] and not p["n"] else "failed" if p["failed"] and not p["n"] \
                else "" if np.isnan(p["mean"]) else f"{p['mean']:.4f}" + (
                    f"\n[{p['low']:.4f}, {p['high']:.4f}] (n={p['n']})" if p["n"] > 1 else "")
            ax.text(j, i, text, ha="center", va="center", fontsize=9,
                    color={kind: color for kind, _, color in MARKS}.get(text, "black"))
    image = ax.imshow(grid, cmap="viridis", aspect="auto", alpha=0.85)
    fig.colorbar(image, ax=ax, label=label)
    ax.set_xticks(range(len(vb)), vb)
    ax.set_yticks(range(len(va)), va)
    ax.set_xlabel(kb)
    ax.set_ylabel(ka)
    return fig


def _panels(keys: Sequence[str], values: Dict[str, List[str]], point, metric: str, label: str, drawn: bool):
    """One panel per key, two to a line; each point a mean over the other keys."""
    columns = min(len(keys), 2)
    lines = -(-len(keys) // columns)
    fig, axes = pyplot().subplots(lines, columns, figsize=(5.2 * columns, 3.8 * lines), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, keys):
        _panel(ax, key, values[key], [point(lambda s, v=v: s[key] == v) for v in values[key]], metric, drawn)
        ax.set_ylabel(label if len(keys) == 1 else f"{label}\n(mean over the other keys)", fontsize=10)
    return fig


def _per_key(keys: Sequence[str], values: Dict[str, List[str]], point, metric: str, label: str, what: str,
             drawn: bool) -> Dict[str, object]:
    """TensorBoard's cards for several keys: one figure per key, as wide as a card."""
    figures = {}
    for key in keys:
        figures[f"sweep/summary_{key}"], ax = pyplot().subplots(figsize=(5.5, 4))
        _panel(ax, key, values[key], [point(lambda s, v=v: s[key] == v) for v in values[key]], metric, drawn)
        ax.set_ylabel(f"{label}\n(mean over the other keys)", fontsize=10)
        fit_width(ax.set_title(f"best {label} — {what}", fontsize=10), figures[f"sweep/summary_{key}"])
        figures[f"sweep/summary_{key}"].tight_layout()
    return figures


def _log_axis(ax, x) -> None:
    """Ticks at 1, 2, 5 × 10ⁿ over two decades or less, else 10ⁿ; plain numbers."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if max(x) / min(x) <= 100 else (1.0,)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _panel(ax, key: str, values: List[str], points: List[Dict], metric: str, drawn: bool = False) -> None:
    """One key: numbers on a numeric axis, categories in their order; failures marked below. A
    grid's few numbers are each a tick; a search's draws (`drawn`) fall between the axis's own."""
    import numpy as np

    numbers = [_number(v) for v in values]
    numeric = all(n is not None for n in numbers) and len(values) > 1
    x = np.array(numbers, dtype=float) if numeric else np.arange(len(values), dtype=float)
    if numeric and logarithmic(x):
        _log_axis(ax, x)
    mean = np.array([p["mean"] for p in points])
    order = [i for i in np.argsort(x) if not np.isnan(mean[i])]
    joined = not numeric or len(values) <= 8  # a grid's values: a line; a search's many draws: points
    ax.plot(x[order], mean[order], "o-" if joined else "o", color="tab:blue", markersize=5, label="mean of ok runs")
    spread = [(i, p) for i, p in enumerate(points) if p["n"] > 1 and p["low"] is not None]
    if spread:
        below = [p["mean"] - p["low"] for _, p in spread]  # inside the metric's range: bounded() in _point()
        above = [p["high"] - p["mean"] for _, p in spread]
        ax.errorbar(x[[i for i, _ in spread]], [p["mean"] for _, p in spread], yerr=[below, above], fmt="none",
                    ecolor="tab:blue", capsize=4, label="95 % interval of its n runs")
        for i, p in spread:  # the rightmost one's to its left: inside the frame
            last = x[i] == max(x[j] for j, _ in spread)
            ax.annotate(f"n={p['n']}", (x[i], p["mean"]), textcoords="offset points", xytext=(-5 if last else 5, 4),
                        ha="right" if last else "left", fontsize=8)
    for kind, marker, color in MARKS:
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
    if any(p["failed"] or p[REJECTED] for p in points) or spread:
        ax.legend(fontsize=8, loc="best")
