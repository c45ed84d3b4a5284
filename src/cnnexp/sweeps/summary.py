"""The table of a sweep: every run's settings, metrics, time and status, best first; runs that
differ only in replicate keys (`sweep.replicate_keys`, default [seed]) grouped with mean ±
standard deviation; a plot of validation accuracy against what the sweep varies.

Printed as markdown (friendly numbers); written for machines as plain-number CSV:
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

from cnnexp.files import write_atomic
from cnnexp.run_folder import read_results
from cnnexp.sweeps import search

METRICS = [("best_val_acc", "val acc"), ("test_acc", "test acc"), ("best_val_loss", "val loss"),
           ("test_loss", "test loss"), ("params", "params"), ("images_per_s", "images/s"), ("seconds", "time s")]
GROUPED = [("best_val_acc", "val acc"), ("test_acc", "test acc"), ("best_val_loss", "val loss"), ("test_loss", "test loss")]


def collect(sweep_dir: Path) -> List[Dict]:
    rows = []
    for run_dir in sorted(p for p in Path(sweep_dir).iterdir() if p.is_dir() and not p.name.startswith(".")):
        results = read_results(run_dir)
        if results is None:
            results = {"status": "failed", "reason": "no results.json (the job did not start or was killed)"}
        elif not isinstance(results, dict) or not isinstance(results.get("overrides", []), list):
            results = {"status": "failed", "reason": "results.json is not a run record"}
        elif results.get("status") == "running":  # its lock's process gone: killed, not running (cnnexp.check)
            from cnnexp.check import state

            results = {**results, "status": state(run_dir, results)}
        rows.append({"run": run_dir.name, **results})
    return rows


def swept(rows: List[Dict]) -> Dict[str, List[str]]:
    """key → the values it takes across the runs, for every override that varies."""
    values: Dict[str, List[str]] = {}
    for r in rows:
        for item in r.get("overrides", []):
            key, _, value = item.partition("=")
            values.setdefault(key.lstrip("+~"), [])
            if value not in values[key.lstrip("+~")]:
                values[key.lstrip("+~")].append(value)
    return {k: v for k, v in values.items() if len(v) > 1}


def setting(row: Dict, keys: Sequence[str]) -> Dict[str, str]:
    found = dict(item.lstrip("+~").partition("=")[::2] for item in row.get("overrides", []))
    return {k: found.get(k, "") for k in keys}


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


def _reason(r: Dict) -> str:
    return str(r.get("reason", "")).splitlines()[0][:160] if r.get("reason") else ""


def run_table(rows: List[Dict]) -> Tuple[list, list, list]:
    """(header, friendly cells, plain values): one row per run, best first."""
    present = [(key, title) for key, title in METRICS if any(r.get(key) is not None for r in rows)]
    header = ["run", "status"] + [title for _, title in present] + ["reason"]
    friendly, plain = [], []
    for r in sorted(rows, key=_score, reverse=True):
        friendly.append([r["run"], r.get("status", "?"), *(_cell(k, r.get(k)) for k, _ in present), _reason(r)])
        plain.append([r["run"], r.get("status", "?"), *(r.get(k) for k, _ in present), _reason(r)])
    return header, friendly, plain


def groups(rows: List[Dict], replicate_keys: Sequence[str]) -> Dict[Tuple, List[Dict]]:
    """Runs that differ only in replicate keys, keyed by the other swept values."""
    keys = [k for k in swept(rows) if k not in replicate_keys]
    grouped: Dict[Tuple, List[Dict]] = {}
    for r in rows:
        grouped.setdefault(tuple(setting(r, keys).items()), []).append(r)
    return grouped


def _mean_sd(values: List[float]) -> Tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def group_table(rows: List[Dict], replicate_keys: Sequence[str]) -> Tuple[list, list, list]:
    """(header, friendly, plain): one row per setting, mean ± sd and n over its ok replicates,
    sorted by mean validation accuracy (or loss)."""
    present = [(k, t) for k, t in GROUPED if any(r.get(k) is not None for r in rows)]
    header = ["setting", "n", "ok"] + [f"{t} {s}" for _, t in present for s in ("mean", "sd")]
    entries = []
    for key, members in groups(rows, replicate_keys).items():
        ok = [m for m in members if m.get("status") == "ok"]
        stats = {k: _mean_sd([m[k] for m in ok if m.get(k) is not None]) for k, _ in present}
        name = ",".join(f"{k.split('.', 1)[-1]}={v}" for k, v in key) or "defaults"
        entries.append((name, len(members), len(ok), stats))
    friendly, plain = [], []
    for name, n, n_ok, stats in sorted(entries, key=lambda e: _group_score(e[3]), reverse=True):
        plain.append([name, n, n_ok, *(v for k, _ in present for v in stats[k])])
        cells = [name, str(n), str(n_ok)]
        for k, _ in present:
            mean, sd = stats[k]
            cells += ["" if mean is None else f"{mean:.4f}", "" if sd is None else f"± {sd:.4f}"]
        friendly.append(cells)
    return header, friendly, plain


def _group_score(stats: Dict) -> float:
    """Mean validation accuracy, or minus the mean validation loss; settings with neither last."""
    acc, loss = stats.get("best_val_acc", (None,))[0], stats.get("best_val_loss", (None,))[0]
    return acc if acc is not None else -loss if loss is not None else float("-inf")


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


def write_summary(sweep_dir: Path, replicate_keys: Sequence[str] = ("seed",)) -> List[Dict]:
    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir)
    header, friendly, plain = run_table(rows)
    _csv(sweep_dir / "summary_runs.csv", header, plain)
    replicated = any(len(m) > 1 for m in groups(rows, replicate_keys).values()) and \
        any(k in swept(rows) for k in replicate_keys)
    if replicated:
        g_header, g_friendly, g_plain = group_table(rows, replicate_keys)
        print(markdown(g_header, g_friendly))
        print(f"\n(mean ± sd over {', '.join(replicate_keys)}; each run in summary_runs.csv)")
        _csv(sweep_dir / "summary.csv", g_header, g_plain)
    else:
        print(markdown(header, friendly))
        _csv(sweep_dir / "summary.csv", header, plain)
    best = max((r for r in rows if r.get("status") == "ok"), key=_score, default=None)
    if best is not None:
        print(f"\nbest run: {best['run']}; on its own:\n  python -m cnnexp.train "
              + " ".join(shlex.quote(o) for o in best.get("overrides", [])))
    figure = plot(sweep_dir, rows, replicate_keys)
    _log_to_tensorboard(sweep_dir, rows, figure)
    if (sweep_dir / search.STUDY_FILE).is_file():
        search.report(sweep_dir)
    return rows


def plot(sweep_dir: Path, rows: List[Dict], replicate_keys: Sequence[str]) -> Path | None:
    """summary.png: validation accuracy (or loss) against the swept keys, with replicate error
    bars; a heatmap for two keys; one panel per key (mean over the others) for more. Settings
    that did not end ok are marked. Also logged to TensorBoard at the sweep's root."""
    keys = [k for k in swept(rows) if k not in replicate_keys]
    if not keys:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metric, label = ("best_val_acc", "validation accuracy") if any(r.get("best_val_acc") is not None for r in rows) \
        else ("best_val_loss", "validation loss")
    values = swept(rows)

    def stats(select) -> Tuple[float, float, bool]:
        picked = [r for r in rows if select(setting(r, keys))]
        ok = [r[metric] for r in picked if r.get("status") == "ok" and r.get(metric) is not None]
        mean, sd = _mean_sd(ok)
        return (np.nan if mean is None else mean), (0.0 if sd is None else sd), bool(picked) and not ok

    if len(keys) == 2:
        (ka, va), (kb, vb) = (keys[0], values[keys[0]]), (keys[1], values[keys[1]])
        fig, ax = plt.subplots(figsize=(1.3 * len(vb) + 3, 1.0 * len(va) + 2.5))
        grid = np.full((len(va), len(vb)), np.nan)
        for i, a in enumerate(va):
            for j, b in enumerate(vb):
                mean, sd, failed = stats(lambda s, a=a, b=b: s[ka] == a and s[kb] == b)
                grid[i, j] = mean
                ax.text(j, i, "failed" if failed else "" if np.isnan(mean) else f"{mean:.4f}\n±{sd:.4f}",
                        ha="center", va="center", fontsize=8, color="red" if failed else "black")
        image = ax.imshow(grid, cmap="viridis", aspect="auto")
        fig.colorbar(image, ax=ax, label=label)
        ax.set_xticks(range(len(vb)), vb)
        ax.set_yticks(range(len(va)), va)
        ax.set_xlabel(kb)
        ax.set_ylabel(ka)
    else:
        fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.5), squeeze=False)
        for ax, key in zip(axes[0], keys):
            points = [stats(lambda s, v=v: s[key] == v) for v in values[key]]
            x = np.arange(len(values[key]))
            ax.errorbar(x, [p[0] for p in points], yerr=[p[1] for p in points], fmt="o-", capsize=4)
            for xi, p in zip(x, points):
                if p[2]:
                    ax.annotate("failed", (xi, np.nanmin([q[0] for q in points] or [0])), color="red",
                                ha="center", fontsize=8)
            ax.set_xticks(x, values[key])
            ax.set_xlabel(key)
            ax.set_ylabel(label + ("" if len(keys) == 1 else " (mean over the others)"))
    fig.suptitle(f"{Path(sweep_dir).name}: {label}, mean ± sd over {', '.join(replicate_keys)}", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    write_atomic(Path(sweep_dir) / "summary.png", buffer.getvalue())
    return fig


def _typed(text: str):
    """An override's value as the runs log it in HParams: integers as text, floats as numbers."""
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        return str(value) if kind is int else value
    return text


def _log_to_tensorboard(sweep_dir: Path, rows: List[Dict], figure) -> None:
    """At the sweep's root: the summary figure, and the HParams experiment config — the swept keys
    with their discrete values first, and the metrics — so parallel coordinates show categories."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    from omegaconf import OmegaConf
    from tensorboard.plugins.hparams import plugin_data_pb2

    from cnnexp.run import HPARAM_METRICS, flat_hparams

    domains = {k: [_typed(v) for v in vs] for k, vs in swept(rows).items()}
    metrics = {f"hparams/{m}": 0.0 for m in HPARAM_METRICS if any(r.get(m) is not None for r in rows)}
    configs = [Path(sweep_dir) / r["run"] / "config.yaml" for r in rows]
    first = next((p for p in configs if p.is_file()), None)
    every = flat_hparams(OmegaConf.to_container(OmegaConf.load(first)), list(domains)) if first else {}
    with SummaryWriter(str(sweep_dir)) as writer:
        if figure is not None:
            import matplotlib.pyplot as plt

            writer.add_figure("sweep/summary", figure, 0)
            plt.close(figure)
        if domains:  # swept keys first, with their values; then every other setting the runs log
            values = {**{k: d[0] for k, d in domains.items()}, **{k: v for k, v in every.items() if k not in domains}}
            logged = sorted({r["status"] for r in rows if r.get("status") in ("ok", "pruned")}) or ["ok"]
            values["status"] = logged[0]  # each run logs its own: a search's pruned trials filter apart
            experiment, _, _ = hparams(values, metrics, hparam_domain_discrete={**domains, "status": logged})
            plugin = experiment.value[0].metadata.plugin_data
            data = plugin_data_pb2.HParamsPluginData.FromString(plugin.content)
            for info in data.experiment.hparam_infos:  # TensorBoard lists the keys that differ first
                info.differs = info.name in domains
            plugin.content = data.SerializeToString()
            writer.file_writer.add_summary(experiment)


def finish_sweep(sweep_dir: Path, replicate_keys: Sequence[str] = ("seed",)) -> None:
    """When a sweep ends: print and save the tables and plot; exit 1 if a run did not end ok —
    except, in a search, trials pruned or rejected by the shape check: those are how a search works."""
    rows = write_summary(sweep_dir, replicate_keys)
    counts = Counter(r.get("status", "?") for r in rows)
    print(f"\nsweep folder: {sweep_dir} (summary.csv, summary.png) — "
          + ", ".join(f"{n} {status}" for status, n in sorted(counts.items(), key=lambda c: c[0] != "ok")))
    not_ok = [r for r in rows if r.get("status") not in ("ok", "pruned") and not r.get("rejected")]
    if not not_ok and not any(r.get("status") in ("ok", "pruned") for r in rows):
        print("cnnexp: no run trained: every setting failed the shape check; widen the space to settings that fit "
              "(python -m cnnexp.shapes shows a setting's table)", file=sys.stderr)
        raise SystemExit(1)
    if not_ok:
        kinds = " or ".join(sorted({r.get("status", "?") for r in not_ok}))
        print(f"cnnexp: {len(not_ok)} of {len(rows)} runs {kinds}: "
              + "; ".join(f"{r['run']}: {str(r.get('reason', r.get('status')))[:120]}" for r in not_ok), file=sys.stderr)
        raise SystemExit(1)
