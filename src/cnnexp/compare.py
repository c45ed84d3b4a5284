"""`python -m cnnexp.compare A B [C …] [out=DIR]`: runs, sweeps and sweep settings side by side.

Each of A, B, … is a run folder, a sweep folder (every setting in it, replicates grouped as
the summary groups them), or one setting of a sweep, `SWEEP:kernel_size=5`. Printed: the
config keys whose effective values differ (config.yaml), the metrics (mean, sd and 95 %
interval where replicated), and Welch's test of each against the first on the metric that
ranks runs. Written to DIR (default: the current folder): compare.csv (those numbers) and
compare.png (the validation curves from metrics.csv, overlaid, 95 % bands where replicated,
clipped to what the metric can be as the table's ends are).
The numbers are the summary's own: the same functions, on the same runs.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence

from cnnexp.core.catalogue import CURVES, QUALITY, title_of
from cnnexp.core.console import folded
from cnnexp.config.migrations import migrate
from cnnexp.core.errors import RunError, SettingsError, UserError, fail
from cnnexp.core.figures import pyplot, save_png
from cnnexp.records.folder import config_path, is_run, is_sweep, metrics_path
from cnnexp.records.provenance import code_of, read_provenance, short, side_by_side
from cnnexp.sweeps import stats
from cnnexp.sweeps.collect import collect, load_yaml, ranking, read_record, record_text, recorded_replicate_keys
from cnnexp.sweeps.replicates import bounded, ok_by_setting
from cnnexp.sweeps.tables import CLIPPED, STATS, end_cell, markdown, printable, write_csv
from cnnexp.tracking.hparams import flatten

USAGE = """usage: python -m cnnexp.compare A B [C …] [out=DIR]

  A, B, …  a run folder (outputs/<date>/<time>), a sweep folder (outputs/multirun/<date>/<time>:
           each of its settings, replicates grouped), or one setting of a sweep
           (outputs/multirun/<date>/<time>:kernel_size=5, named as the sweep's summary names it)
  out=DIR  where compare.csv and compare.png are written (default: the current folder)

Prints the config keys that differ, the metrics (mean ± sd [95 % interval] where replicated) and
Welch's test of each against the first."""

IGNORED = ("paths.", "resume")  # where a run was written or continued from: not what it trained
WIDTH = 100  # the console's: every table printed fits it


@dataclass
class Entry:
    """One side of the comparison: a label and its runs that ended ok."""
    label: str
    runs: List[Path]
    results: List[dict] = field(default_factory=list)

    def values(self, metric: str) -> List[float]:
        return [r[metric] for r in self.results if r.get(metric) is not None]


def entries_of(arg: str) -> List[Entry]:
    """What one argument stands for: a run, every setting of a sweep, or one setting."""
    path, spec = Path(arg).expanduser(), None
    if not path.is_dir() and ":" in arg:
        folder, _, spec = arg.rpartition(":")
        path = Path(folder).expanduser()
    if not path.is_dir():
        raise RunError(f"{arg}: no such folder")
    if is_sweep(path):
        rows = collect(path)
        settings = ok_by_setting(rows, recorded_replicate_keys(path))
        if spec is not None:
            settings = {name: runs for name, runs in settings.items() if _matches(name, spec)}
            if len(settings) != 1:
                known = "; ".join(ok_by_setting(rows, recorded_replicate_keys(path)))
                raise RunError(f"{arg}: {'no' if not settings else len(settings)} settings match {spec!r}; "
                               f"name one of: {known}")
        found = [Entry(arg if spec is not None else f"{arg}:{name}", [path / r["run"] for r in runs], runs)
                 for name, runs in settings.items() if runs or spec is not None]
        if spec is None and len(found) < len(settings):  # a setting of the sweep with no run that ended ok
            print(f"note: left out of {arg}, no run of theirs ended ok: "
                  + printable(", ".join(name for name, runs in settings.items() if not runs)))
    elif spec is None and is_run(path):
        results, problem = read_record(path)
        if problem:
            raise RunError(f"{arg}/{problem}; `python -m cnnexp.check {arg}` checks every record")
        results = results or {}
        found = [Entry(arg, [path], [results])] if results.get("status") == "ok" else []
        if not found:
            raise RunError(f"{arg}: this run did not end ok (status {results.get('status', 'unknown')}); "
                           "compare runs that finished")
    else:
        raise RunError(f"{arg}: not a run folder (no config.yaml) or a sweep folder (no multirun.yaml); "
                       "pass a folder under outputs/ or outputs/multirun/")
    empty = [e.label for e in found if not e.runs]
    if empty:
        raise RunError(f"{', '.join(empty)}: no run here ended ok; compare runs that finished")
    return found


def _matches(name: str, spec: str) -> bool:
    """kernel_size=5 names a setting whose own name says so (keys as the summary shortens them)."""
    have = dict(part.partition("=")[::2] for part in name.split(","))
    want = dict(part.partition("=")[::2] for part in spec.split(","))
    return all(have.get(k.split(".", 1)[-1] if k not in have else k) == v for k, v in want.items())


def configs(entry: Entry) -> List[Dict]:
    """Each run's effective config, flat. config.yaml holds each block as built, so the model's
    shortcuts (`model.kernel_size`: set, or null for the blocks' own) would only show how it was
    typed: they are left out, the blocks' values say what ran."""
    from cnnexp.arithmetic.geometry import SHORTCUTS

    typed = {f"model.{key}" for key in SHORTCUTS}
    found = []
    for run in entry.runs:
        config = load_yaml(config_path(run))
        if not isinstance(config, dict):
            raise RunError(f"{config_path(run)}: not a run's config (a mapping of settings); "
                           f"`python -m cnnexp.check {run}` checks every record")
        try:  # a run recorded before a key existed ran with the value it had then: no false difference
            config = migrate({k: v for k, v in config.items() if k != "hydra"})
        except SettingsError as e:
            raise RunError(f"{config_path(run)}: {e}; `python -m cnnexp.check {run}` checks every record") from None
        flat = {k: v for k, v in flatten(config).items() if k not in typed}
        found.append({**flat, **effective_bias(config), **effective_padding(config)})
    return found


def effective_bias(config: Dict) -> Dict:
    """`bias: auto` as what it builds (a bias where the block has no norm, as arithmetic/geometry
    decides), so that `auto` and `true` that built the same layer are one fact."""
    blocks = (config.get("model") or {}).get("blocks") or []
    return {f"model.blocks.{i}.bias": b.get("norm") == "none" if b.get("bias") == "auto" else bool(b.get("bias"))
            for i, b in enumerate(blocks) if isinstance(b, dict) and "bias" in b}


def effective_padding(config: Dict) -> Dict:
    """Each block's padding as the pixels it pads (`same` with a 3×3 kernel is 1), so that two runs
    compare in one form: an int where every side gets the same, else `top,bottom×left,right`.
    From the shape plan (arithmetic/geometry); a config the plan cannot be built from keeps its values."""
    from cnnexp.config.settings import load

    blocks = (config.get("model") or {}).get("blocks") or []
    if not any(isinstance(b, dict) and isinstance(b.get("padding"), str) for b in blocks):
        return {}  # already pixels: nothing to build (a folder's data would be scanned for it)
    try:
        layers = load(config).model.layers
    except Exception:  # an older or hand-edited record: its values as written
        return {}
    found = {}
    for layer in layers:
        if layer.kind == "conv" and layer.block.startswith("block"):
            (t, b), (l, r) = layer.pads
            found[f"model.blocks.{int(layer.block[5:]) - 1}.padding"] = t if layer.symmetric else f"{t},{b}×{l},{r}"
    return found


def differing(entries: Sequence[Entry]) -> tuple:
    """(header, rows): one row per config key whose effective value is not the same everywhere,
    one column per entry (by its letter); a value that differs within an entry (its replicate
    keys) lists each."""
    per_entry = []
    for entry in entries:
        merged: Dict[str, List] = {}
        for flat in configs(entry):
            for key, value in flat.items():
                if not key.startswith(IGNORED):
                    merged.setdefault(key, [])
                    if value not in merged[key]:
                        merged[key].append(value)
        per_entry.append(merged)
    keys = [k for k in dict.fromkeys(k for m in per_entry for k in m)
            if len({repr(m.get(k)) for m in per_entry}) > 1 or any(len(m.get(k, [])) > 1 for m in per_entry)]
    rows = [[k, *(short(",".join(map(str, m.get(k, ["—"]))), 30) for m in per_entry)] for k in keys]
    return ["key", *letters(entries)], rows


def letters(entries: Sequence) -> List[str]:
    """The entries' short names in every table: A, B, … (their folders are said once, above)."""
    return [chr(65 + i) if i < 26 else f"#{i + 1}" for i in range(len(entries))]


def fitted(header: list, rows: list, csv_name: str, width: int = WIDTH) -> str:
    """A table that fits `width` columns: as it is, else turned (one row per column), else left to
    its CSV, with the path said."""
    table = markdown(header, rows)
    if max(map(len, table.splitlines())) <= width:
        return table
    turned = markdown(["", *(row[0] for row in rows)], [[h, *(row[i] for row in rows)] for i, h in enumerate(header) if i])
    if max(map(len, turned.splitlines())) <= width:
        return turned
    return f"(wider than {width} columns: every number is in {csv_name})"
def provenance_lines(entries: Sequence[Entry], names: List[str]) -> List[str]:
    """Code, packages, machine and data that differ, each entry by its first run (`side_by_side`);
    an entry whose runs ran on different code says so."""
    found = [[read_provenance(run) for run in e.runs] for e in entries]
    lines = [f"{letter}: its runs ran on {len(codes)} different versions of the code" for letter, records in zip(names, found)
             if len(codes := {repr(code_of(r)) for r in records if r is not None}) > 1]
    return lines + side_by_side(names, [records[0] for records in found])


def check_same_task(entries: Sequence[Entry]) -> None:
    tasks = {}
    for entry in entries:
        for flat in configs(entry):
            tasks.setdefault(flat.get("model.task"), entry.label)
    if len(tasks) > 1:
        raise RunError("these trained different tasks (" + "; ".join(f"{label}: {task}" for task, label in tasks.items())
                       + "); compare runs of one task")


def ranking_metric(entries: Sequence[Entry]) -> str:
    """The summary's: the runs' recorded monitor."""
    return ranking([r for e in entries for r in e.results])[0]


def metrics_table(entries: Sequence[Entry]) -> tuple:
    """(header, friendly, plain): per entry n, then mean, sd, 95 % interval of each metric; then
    the test against the first entry on the ranking metric."""
    present = [(m.key, m.title) for m in QUALITY if any(e.values(m.key) for e in entries)]
    metric = ranking_metric(entries)
    title = title_of(metric)
    header = ["", "n"] + [f"{t} {s}" for _, t in present for s in STATS] + \
        [f"{title} − first", "95% low", "95% high", "Welch p", "seeds needed"]
    friendly, plain = [], []
    for i, entry in enumerate(entries):
        cells, numbers = [letters(entries)[i], str(len(entry.runs))], [entry.label, len(entry.runs)]
        for key, _ in present:
            found = stats.interval(entry.values(key))
            low, high, cut_low, cut_high = bounded(key, found and found.low, found and found.high)  # as the summary's
            row = [None] * 4 if found is None else [found.mean, found.sd, low, high]
            numbers += row
            cells += ["" if found is None else f"{found.mean:.4f}",
                      *(end_cell(v, cut) for v, cut in zip(row[1:], (False, cut_low, cut_high)))]
        test = stats.welch(entry.values(metric), entries[0].values(metric)) if i else None
        if test is None:
            numbers += [None] * 5
            cells += ["", "", "", "", ""]  # said once below the table (`tested`)
        else:
            numbers += [test.difference, test.low, test.high, test.p, test.seeds_needed]
            cells += [f"{test.difference:+.4f}", f"{test.low:+.4f}", f"{test.high:+.4f}", f"{test.p:.3g}",
                      "—" if test.seeds_needed is None else str(test.seeds_needed)]
        friendly.append(cells)
        plain.append(numbers)
    return header, friendly, plain


def informative(header: list, rows: list) -> tuple:
    """The columns that carry something: one empty in every row (an interval of single runs, a
    test nobody could run) is left out of the console; compare.csv keeps them all."""
    kept = [i for i in range(len(header)) if i == 0 or any(row[i] for row in rows)]
    return [header[i] for i in kept], [[row[i] for i in kept] for row in rows]


def tested(entries: Sequence[Entry]) -> str:
    """What the console says once instead of a column per single run."""
    single = [letter for letter, e in zip(letters(entries), entries) if len(e.runs) == 1]
    if not single:
        return ""
    return (f"{', '.join(single)}: {'a single run' if len(single) == 1 else 'single runs'} — no interval and no "
            "test (each needs 2 or more runs: seed=1,2,3)")


def epochs_of(entries: Sequence[Entry]) -> Dict[str, List[Dict[str, Dict[int, float]]]]:
    """Each entry's runs' metrics.csv, read before anything is printed or written."""
    return {e.label: [_epochs(metrics_path(run)) for run in e.runs] for e in entries}


def curves(entries: Sequence[Entry], read: Dict[str, List], out: Path) -> Path:
    """compare.png: validation accuracy and loss per epoch, one line per entry (the mean over
    its runs, with the 95 % interval as a band where it has two or more)."""
    shown = [(m.curve, m.label) for m in CURVES if any(m.curve in rows for runs in read.values() for rows in runs)]
    fig, axes = pyplot().subplots(1, max(1, len(shown)), figsize=(5 * max(1, len(shown)), 3.8), squeeze=False)
    for ax, (key, title) in zip(axes[0], shown):
        for entry in entries:
            runs = [rows[key] for rows in read[entry.label] if key in rows]
            epochs = sorted(set.intersection(*(set(r) for r in runs))) if runs else []
            means, lows, highs = band(key, [[r[x] for r in runs] for x in epochs])
            line, = ax.plot(epochs, means, "o-", label=f"{entry.label} (n={len(runs)})", markersize=3)
            if len(runs) > 1:
                ax.fill_between(epochs, lows, highs, alpha=0.2, color=line.get_color())
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("epoch")
        ax.set_ylabel(title)
        ax.legend(fontsize=7)
    fig.suptitle("mean over replicates, 95 % interval as a band", fontsize=9)
    fig.tight_layout()
    return save_png(fig, out / "compare.png")


def band(key: str, per_epoch: Sequence[Sequence[float]]) -> tuple:
    """(means, lows, highs) of a curve: per epoch, the mean over the runs and its 95 % interval,
    clipped to what the metric can be as the tables and summary.png clip it (an accuracy to
    [0, 1], a loss at 0: a curve's range is that of the summary's best of it); an epoch of one run
    has its mean as both ends."""
    found = [stats.interval(values) for values in per_epoch]
    ends = [bounded(key, f.low, f.high)[:2] if f.n > 1 else (f.mean, f.mean) for f in found]
    return [f.mean for f in found], [low for low, _ in ends], [high for _, high in ends]


def _epochs(path: Path) -> Dict[str, Dict[int, float]]:
    """metrics.csv → column → {epoch: value}, for the columns a run logged each epoch (an empty or
    non-finite cell is no point). RunError for a file that is not a run's epochs."""
    by_column: Dict[str, Dict[int, float]] = {}
    if not path.exists() and not path.is_symlink():
        return by_column
    try:
        rows = list(csv.DictReader(io.StringIO(record_text(path), newline="")))
        for row in rows:
            epoch = int(row["epoch"])
            if not 0 <= epoch < 10**7:
                raise ValueError(f"epoch {epoch}")
            for key, value in row.items():
                if key not in ("epoch", None) and value not in ("", None) and math.isfinite(float(value)):
                    by_column.setdefault(key, {})[epoch] = float(value)
    except (KeyError, TypeError, ValueError, csv.Error) as e:
        raise RunError(f"{path}: not a run's epochs ({type(e).__name__}: {str(e)[:80]}); "
                       f"`python -m cnnexp.check {path.parent}` checks every record") from None
    return by_column


def compare(args: Sequence[str], out: Path) -> List[Entry]:
    entries = [e for arg in args for e in entries_of(arg)]
    if len(entries) < 2:
        raise RunError(f"{' '.join(args)}: only one setting to compare; name two or more (or a sweep with two settings)")
    check_same_task(entries)
    read = epochs_of(entries)
    names = letters(entries)
    print("\n".join(f"{letter}  {e.label}" + (f" ({len(e.runs)} runs)" if len(e.runs) > 1 else "")
                    for letter, e in zip(names, entries)) + "\n")
    header, rows = differing(entries)
    print("config keys that differ:\n" + (fitted(header, rows, "the runs' config.yaml") if rows else "(none)") + "\n")
    print("what else differs (provenance.json):\n" + "\n".join(provenance_lines(entries, names) or ["(nothing)"]) + "\n")
    header, friendly, plain = metrics_table(entries)
    print(fitted(*informative(header, friendly), str(out / "compare.csv")))
    if tested(entries):
        print(tested(entries))
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_csv(out / "compare.csv", header, plain)
        figure = curves(entries, read, out)
    except OSError as e:
        where = str(e.filename2 or e.filename or out)
        raise RunError(f"{Path(where).parent if where.endswith('.part') else where}: {e.strerror or e} — the "
                       f"comparison above was printed, but compare.csv and compare.png were not written to {out}; "
                       "name a folder you can write to with out=DIR") from None
    if any(len(e.runs) > 1 for e in entries):
        clipped = f"; an end marked {CLIPPED} is clipped to what the metric can be" \
            if any(CLIPPED + "–" in c or c.endswith(CLIPPED) for row in friendly for c in row) else ""
        print(f"\n(mean ± sd, 95 % Student-t interval; Welch's test against A{clipped})")
    where = out.resolve()  # out=DIR, else the folder compare was started in: said, not left to guess
    here = " (the current folder; out=DIR writes elsewhere)" if where == Path.cwd().resolve() else ""
    print("\n" + folded(f"written to {where}{here}: compare.csv, {Path(figure).name}", "  "))
    return entries


def main(argv: List[str] | None = None) -> None:
    from cnnexp.config.args import folder_argument

    args = sys.argv[1:] if argv is None else argv
    from cnnexp.config.own_network import never_import

    never_import()  # a read-only command: no class a handed folder names is ever imported
    if any(a in ("-h", "--help") for a in args):
        print(USAGE)
        raise SystemExit(0)
    if not args:
        fail("usage: python -m cnnexp.compare A B [C …] [out=DIR] (run folders, sweep folders, or SWEEP:key=value; --help)")
    typed = next((a.split("=", 1)[1] for a in args if a.startswith("out=")), ".")
    if not typed.strip():
        fail("out='' is empty; name the folder for compare.csv and compare.png (out=DIR), or leave out= out "
             "for the current folder")
    out = Path(typed).expanduser()
    folders = [a for a in args if not a.startswith("out=")]
    for folder in folders:
        folder_argument(folder.split(":", 1)[0] if ":" in folder and "=" in folder else folder)
    try:
        compare(folders, out)
    except UserError as e:
        fail(e)
    except OSError as e:
        from cnnexp.core.files import os_error_line

        fail(os_error_line(e))
    except Exception as e:  # a record edited by hand (config.yaml, multirun.yaml) that YAML cannot read
        if type(e).__module__.split(".")[0] not in ("yaml", "omegaconf"):
            raise
        where = getattr(getattr(e, "problem_mark", None), "name", None) or "a config.yaml or multirun.yaml"
        fail(f"{where}: not readable ({str(e).splitlines()[0][:160]}); "
             "`python -m cnnexp.check` on its folder says what else is wrong")


if __name__ == "__main__":
    from cnnexp.core.console import report_like_cat
    from cnnexp.core.stopping import run_command

    report_like_cat()
    run_command(main, "nothing was written, or only whole files")
