"""The table of a sweep: every run's settings, metrics, time and status, best first; runs that
differ only in replicate keys (`sweep_options.replicate_keys`) grouped with mean ±
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
from cnnexp.sweeps import search, stats as replicate_stats

METRICS = [("best_val_acc", "val acc"), ("test_acc", "test acc"), ("best_val_loss", "val loss"),
           ("test_loss", "test loss"), ("params", "params"), ("images_per_s", "images/s"), ("seconds", "time s")]
GROUPED = [("best_val_acc", "val acc"), ("test_acc", "test acc"), ("best_val_loss", "val loss"), ("test_loss", "test loss")]


def recorded_replicate_keys(sweep_dir: Path) -> List[str]:
    """The sweep's own `sweep_options.replicate_keys`, as its first launch recorded them in
    multirun.yaml (a resume that names others does not regroup it); conf/train.yaml's default for a
    sweep recorded before the key existed."""
    from omegaconf import OmegaConf

    from cnnexp import CONF_DIR

    key = "sweep_options.replicate_keys"
    recorded = Path(sweep_dir) / "multirun.yaml"
    keys = OmegaConf.select(OmegaConf.load(recorded), key, default=None) if recorded.is_file() else None
    return list(keys if keys is not None else OmegaConf.select(OmegaConf.load(CONF_DIR / "train.yaml"), key))


def collect(sweep_dir: Path) -> List[Dict]:
    rows = []
    for run_dir in sorted(p for p in Path(sweep_dir).iterdir() if p.is_dir() and not p.name.startswith(".")):
        results = read_results(run_dir)
        if results is None:
            results = {"status": "failed", "reason": "no results.json (the job did not start or was killed)"}
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
    return str(r.get("reason", "")).splitlines()[0][:160] if r.get("reason") else ""


def run_table(rows: List[Dict]) -> Tuple[list, list, list]:
    """(header, friendly cells, plain values): one row per run, best first."""
    present = [(key, title) for key, title in METRICS if any(r.get(key) is not None for r in rows)]
    header = ["run", "status"] + [title for _, title in present] + ["reason"]
    friendly, plain = [], []
    rank = ranking(rows)
    for r in sorted(rows, key=lambda r: _score(r, rank), reverse=True):
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


def _setting_name(key: Tuple) -> str:
    return ",".join(f"{k.split('.', 1)[-1]}={v}" for k, v in key) or "defaults"


def _mean_sd_interval(values: List[float]) -> Tuple[float | None, ...]:
    """mean, sd and the 95 % interval's ends (None with one run: no interval)."""
    found = replicate_stats.interval(values)
    return (None,) * 4 if found is None else (found.mean, found.sd if found.n > 1 else 0.0, found.low, found.high)


def _mean_sd(values: List[float]) -> Tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def group_table(rows: List[Dict], replicate_keys: Sequence[str]) -> Tuple[list, list, list]:
    """(header, friendly, plain): one row per setting, mean ± sd and n over its ok replicates,
    best mean first, by the runs' monitor."""
    present = [(k, t) for k, t in GROUPED if any(r.get(k) is not None for r in rows)]
    header = ["setting", "n", "ok"] + [f"{t} {s}" for _, t in present for s in ("mean", "sd", "95% low", "95% high")]
    entries = []
    for key, members in groups(rows, replicate_keys).items():
        ok = [m for m in members if m.get("status") == "ok"]
        stats = {k: _mean_sd_interval([m[k] for m in ok if m.get(k) is not None]) for k, _ in present}
        name = _setting_name(key)
        entries.append((name, len(members), len(ok), stats))
    friendly, plain = [], []
    key, mode = ranking(rows)
    for name, n, n_ok, stats in sorted(entries, key=lambda e: _better_first(e[3].get(key, (None,))[0], mode),
                                      reverse=True):
        plain.append([name, n, n_ok, *(v for k, _ in present for v in stats[k])])
        cells = [name, str(n), str(n_ok)]
        for k, _ in present:
            mean, sd, low, high = stats[k]
            cells += ["" if mean is None else f"{mean:.4f}", "" if sd is None else f"± {sd:.4f}",
                      "" if mean is None else "1 run — no interval" if low is None else f"{low:.4f}",
                      "" if high is None else f"{high:.4f}"]
        friendly.append(cells)
    return header, friendly, plain


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


def write_summary(sweep_dir: Path, replicate_keys: Sequence[str] | None = None) -> List[Dict]:
    sweep_dir = Path(sweep_dir)
    replicate_keys = recorded_replicate_keys(sweep_dir) if replicate_keys is None else replicate_keys
    rows = collect(sweep_dir)
    header, friendly, plain = run_table(rows)
    _csv(sweep_dir / "summary_runs.csv", header, plain)
    replicated = any(len(m) > 1 for m in groups(rows, replicate_keys).values()) and \
        any(k in swept(rows) for k in replicate_keys)
    if replicated:
        g_header, g_friendly, g_plain = group_table(rows, replicate_keys)
        print(markdown(g_header, g_friendly))
        print(f"\n(mean ± sd over {', '.join(replicate_keys)}, with the mean's 95 % Student-t interval; each run in summary_runs.csv)")
        print_contrast(rows, replicate_keys, [row[0] for row in g_plain])
        _csv(sweep_dir / "summary.csv", g_header, g_plain)
    else:
        print(markdown(header, friendly))
        _csv(sweep_dir / "summary.csv", header, plain)
    print_best(rows, replicate_keys if replicated else ())
    figure = plot(sweep_dir, rows, replicate_keys)
    _log_to_tensorboard(sweep_dir, rows, figure)
    if (sweep_dir / search.STUDY_FILE).is_file():
        search.report(sweep_dir)
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
    kept = [o for o in chosen[0].get("overrides", []) if o.lstrip("+~").partition("=")[0] not in replicate_keys]
    return f"{_setting_name(name)} (mean of {len(chosen)})", kept


def print_best(rows: List[Dict], replicate_keys: Sequence[str] = ()) -> None:
    found = best_setting(rows, replicate_keys)
    if found is not None:
        label = "best setting" if replicate_keys else "best run"
        print(f"\n{label}: {found[0]}, by {ranking(rows)[0]} ({ranking(rows)[1]}); on its own:\n"
              "  python -m cnnexp.train " + " ".join(shlex.quote(o) for o in found[1]))


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


def finish_sweep(sweep_dir: Path, replicate_keys: Sequence[str] | None = None) -> None:
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
