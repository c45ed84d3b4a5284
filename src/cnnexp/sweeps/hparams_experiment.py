"""The sweep's own TensorBoard run, SWEEP/_sweep: the summary's figures and the HParams
experiment — the swept keys first, with their values in the sweep's order, then what every run
logs, and the metrics by name — the one experiment in the folder (cnnexp.tracking.board). With
replicates, each setting is a session too (SWEEP/_sweep/<setting>, status `setting`): the
table's mean and 95 % interval as metrics, so HParams compares settings as the table does."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Dict, List, Sequence

from cnnexp.core.catalogue import HPARAM_METRICS, QUALITY, range_of
from cnnexp.core.errors import RunError
from cnnexp.records.folder import AS_MEANT, config_path, shown_status
from cnnexp.sweeps.collect import UNREADABLE, load_yaml, setting, swept
from cnnexp.sweeps.replicates import groups, setting_name, setting_stats

INTERVAL_PARTS = (("mean", "mean"), ("low", "95% low"), ("high", "95% high"))  # setting/<metric>_<part>: its title


def _typed(text: str):
    """An override's value as the runs log it in HParams: a number where it reads as one."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _setting_titles(settings: list) -> Dict[str, str]:
    """setting/<metric>_<part> → what HParams calls it, for the metrics some setting has."""
    titles = {}
    for m in QUALITY:
        for part, words in INTERVAL_PARTS:
            if any(stats[m.key][0] is not None for *_, stats in settings if m.key in stats):
                titles[f"setting/{m.key}_{part}"] = f"setting {m.title} {words}"
    if settings:
        titles["setting/n"] = "setting n (ok runs)"
    return titles


def _describe(experiment, domains: Dict, titles: Dict[str, str], replicate_keys: Sequence[str]) -> None:
    """The experiment's keys that differ marked (TensorBoard lists them first); its metrics named,
    an interval's ends said to be clipped where their metric has a range."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    plugin = experiment.value[0].metadata.plugin_data
    data = plugin_data_pb2.HParamsPluginData.FromString(plugin.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in domains
    for info in data.experiment.metric_infos:
        info.display_name = titles.get(info.name.tag) or info.name.tag.split("/", 1)[1].replace("_", " ")
        if info.name.tag.startswith("setting/") and info.name.tag.endswith(("_low", "_high")):
            floor, ceiling = range_of(info.name.tag[len("setting/"):].rsplit("_", 1)[0])
            inside = f", clipped to [{floor:g}, {ceiling:g}]" if ceiling is not None else \
                f", clipped at {floor:g}" if floor is not None else ""
            info.description = f"the mean's 95 % Student-t interval over {', '.join(replicate_keys)}{inside}"
    plugin.content = data.SerializeToString()


def log_to_tensorboard(sweep_dir: Path, rows: List[Dict], figures: Dict[str, object],
                       replicate_keys: Sequence[str] = ()) -> None:
    """The figures (each closed once written), the experiment, and with replicates a session per
    setting."""
    from cnnexp.tracking.events import SWEEP_RUN, Events, hparams

    domains = {k: [_typed(v) for v in vs] for k, vs in swept(rows).items()}
    metrics = {f"run/{m}": 0.0 for m in HPARAM_METRICS if any(r.get(m) is not None for r in rows)}
    replicated = any(k in domains for k in replicate_keys) and any(
        len(m) > 1 for m in groups(rows, replicate_keys).values())
    settings = setting_stats(rows, replicate_keys) if replicated else []
    titles = _setting_titles(settings)
    metrics.update({tag: 0.0 for tag in titles})
    every = _first_config(sweep_dir, rows, list(domains))
    with Events(Path(sweep_dir) / SWEEP_RUN) as writer:
        for name, figure in figures.items():
            writer.figure(name, figure)
        if not domains:
            return
        # swept keys first, with their values; then every other setting the runs log
        values = {**{k: d[0] for k, d in domains.items()}, **{k: v for k, v in every.items() if k not in domains}}
        logged = sorted({r["status"] for r in rows if r.get("status") in AS_MEANT}) or ["ok"]
        values["status"] = logged[0]  # each run logs its own: a search's pruned trials filter apart
        discrete = {k: d for k, d in domains.items() if len({type(v) for v in d}) == 1}  # 0,same: no domain
        untrained = [r for r in rows if r.get("status") not in (*AS_MEANT, UNREADABLE)]
        statuses = logged + sorted({shown_status(r) for r in untrained}) + (["setting"] if settings else [])
        experiment, _, _ = hparams(values, metrics, domains={**discrete, "status": statuses})
        _describe(experiment, domains, titles, replicate_keys)
        writer.summary(experiment)
        _log_untrained(Path(sweep_dir), rows, values, list(domains))
        for key, _, n_ok, stats in settings:
            _log_setting(Path(sweep_dir) / SWEEP_RUN / folder_name(setting_name(key)), {
                **{k: v for k, v in values.items() if k not in replicate_keys},
                **{k: _typed(v) for k, v in key}, "status": "setting"},
                {"setting/n": float(n_ok), **{f"setting/{m}_{part}": v for m, st in stats.items()
                 for (part, _), v in zip(INTERVAL_PARTS, (st[0], st[2], st[3])) if v is not None}})


def _log_untrained(sweep_dir: Path, rows: List[Dict], values: Dict, keys: List[str]) -> None:
    """A session (SWEEP/_sweep/<run>) for each run that logged none itself — failed, refused before
    launch, diverged, interrupted, rejected — with its swept values and its status, so that HParams
    shows which settings did not work; a run that has since ended as meant logs its own, and its
    old session here goes."""
    from cnnexp.tracking.events import SWEEP_RUN

    for r in rows:
        if r.get("status") == UNREADABLE:
            continue
        folder = sweep_dir / SWEEP_RUN / folder_name(str(r["run"]))
        if r.get("status") in AS_MEANT:
            if folder.is_dir() and not folder.is_symlink():
                for old in folder.glob("events.out.tfevents.*"):
                    old.unlink()
            continue
        _log_setting(folder, {**{k: v for k, v in values.items() if k not in keys},
                              **{k: _typed(v) for k, v in setting(r, keys).items()}, "status": shown_status(r)},
                     {}, ended="STATUS_FAILURE")


def _first_config(sweep_dir: Path, rows: List[Dict], swept_keys: List[str]) -> Dict:
    """What every run logs, from the first run whose config.yaml reads as a config ({} if none does)."""
    from cnnexp.tracking.hparams import flat_hparams

    for r in rows:
        try:
            config = load_yaml(config_path(Path(sweep_dir) / r["run"]))
        except RunError:  # missing, a link, unreadable: the next run's
            continue
        if isinstance(config, dict):
            return flat_hparams(config, swept_keys)
    return {}


def folder_name(setting: str) -> str:
    """A setting's session folder under _sweep: its name with what a path would read as a folder
    (a `/` in a value handed over in a record, `..`) or cannot hold (NUL) escaped, so that the
    session stays inside _sweep; a name longer than a file system allows is cut, with its hash."""
    import hashlib

    name = setting.replace("/", "%2F").replace("\0", "%00")
    name = "%2E" + name[1:] if name.startswith(".") else name
    if len(name.encode()) > 200:
        name = name.encode()[:180].decode(errors="ignore") + "…" + hashlib.sha1(setting.encode()).hexdigest()[:10]
    return name


def _log_setting(folder: Path, values: Dict, metrics: Dict[str, float], ended: str = "STATUS_SUCCESS") -> None:
    """One setting's HParams session: its keys, and its mean and interval ends as metrics (rewritten
    whole by each summary, so a rebuilt summary shows today's numbers once)."""
    from cnnexp.tracking.events import Events, hparams

    if folder.is_symlink() or folder.exists() and not folder.is_dir():  # a link would take the events elsewhere
        raise FileExistsError(errno.EEXIST, "not a folder, where a setting's TensorBoard session goes", str(folder))
    for old in folder.glob("events.out.tfevents.*"):
        old.unlink()
    with Events(folder) as writer:
        _, start, end = hparams(values, metrics, ended=ended)
        writer.summary(start)
        for tag, value in metrics.items():
            writer.scalar(tag, value)
        writer.summary(end)
