"""What a sweep does to its config before launching: only swept keys name its runs (the name
itself is `compose.run_name`), duplicate values run once, and `-m resume=SWEEP` relaunches the
recorded sweep."""

from __future__ import annotations

import time

from omegaconf import DictConfig, OmegaConf, read_write


def name_runs_by_swept_keys(config: DictConfig) -> None:
    """The fixed overrides join hydra's exclude_keys, through the hydra overrides that each
    job's config is composed from, so only swept keys name a run."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from cnnexp.compose import task_overrides

    task = OverridesParser.create().parse_overrides(task_overrides(config.hydra))
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    swept = {o.key_or_group for o in task if o.is_sweep_override()} | set(params)
    fixed = {o.key_or_group for o in task} - swept
    exclude = list(config.hydra.job.config.override_dirname.exclude_keys) + sorted(fixed)
    with read_write(config.hydra.overrides):
        config.hydra.overrides.hydra.append(
            f"hydra.job.config.override_dirname.exclude_keys=[{','.join(exclude)}]")


def drop_duplicate_values(config: DictConfig) -> None:
    """`model.kernel_size=3,5,3` would run 3 twice into one folder: each value runs once."""
    import logging

    from hydra.core.override_parser.overrides_parser import OverridesParser

    from cnnexp.compose import task_overrides

    parsed = OverridesParser.create().parse_overrides(task_overrides(config.hydra))
    kept = []
    for o in parsed:
        if o.is_sweep_override() and not o.is_interval_sweep() and not o.is_range_sweep():
            values = list(o.sweep_string_iterator())
            unique = list(dict.fromkeys(values))
            if len(unique) < len(values):
                logging.getLogger("cnnexp").warning("%s: duplicate values dropped, each runs once: %s",
                                                     o.get_key_element(), ",".join(unique))
                kept.append(f"{o.get_key_element()}={','.join(unique)}")
                continue
        kept.append(o.input_line)
    with read_write(config.hydra.overrides):
        config.hydra.overrides.task = kept


def one_value(o) -> str:
    """An override with one of its sweep's values (the start of an interval): enough to compose."""
    if not o.is_sweep_override():
        return o.input_line
    if o.is_interval_sweep():
        return f"{o.get_key_element()}={o.value().start}"
    return f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}"


def resume_sweep(config: DictConfig) -> None:
    """`-m resume=SWEEP_FOLDER`: the sweep recorded there (its overrides and swept params), run
    again into the same folder; each job then skips, continues or re-runs its own run."""
    from pathlib import Path

    from hydra.core.override_parser.overrides_parser import OverridesParser

    from cnnexp.compose import compose_config, task_overrides
    from cnnexp.errors import RunError

    typed = OmegaConf.select(config, "resume")
    folder = Path(str(typed)).expanduser()
    if not (folder / "multirun.yaml").is_file():
        raise RunError(f"resume={typed}: not a sweep folder (no multirun.yaml); pass a folder under "
                       "outputs/multirun/, or drop -m to resume a single run")
    try:
        recorded = OmegaConf.load(folder / "multirun.yaml")
        overrides = task_overrides(recorded.hydra)
        params = OmegaConf.select(recorded, "hydra.sweeper.params", default=None) or {}
        parsed = OverridesParser.create().parse_overrides(overrides)
        parsed += OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
        compose_config([one_value(o) for o in parsed])  # the recorded sweep still composes with today's config
    except Exception as e:
        raise RunError(f"resume={typed}: the recorded sweep no longer composes ({str(e).splitlines()[0][:200]})") from None
    new = [o for o in task_overrides(config.hydra) if not o.startswith("resume=")]
    with read_write(config.hydra):
        config.hydra.overrides.task = overrides + [o for o in new if o.split("=", 1)[0] not in
                                                  {r.split("=", 1)[0] for r in overrides}]
        config.hydra.overrides.hydra.append(f"hydra.sweep.dir={folder.resolve()}")
        # this launch's Hydra records and job logs go to the sweep's .resume-<time>/, so that a
        # finished run's folder stays exactly as it was
        launch = folder.resolve() / f".resume-{time.strftime('%Y-%m-%d_%H-%M-%S')}"
        launch.mkdir(exist_ok=True)
        config.hydra.overrides.hydra.append(f"hydra.output_subdir={launch}/job${{hydra.job.num}}")
        config.hydra.overrides.hydra.append(
            f"hydra.job_logging.handlers.file.filename={launch}/job${{hydra.job.num}}.log")
        # the recorded sweeper and its space; options this command sets (hydra.sweeper.n_trials=…) win
        named = OmegaConf.to_container(config.hydra.overrides.hydra, resolve=False)  # ${hydra.job.num} stays text
        sweeper = recorded.hydra.sweeper
        for o in OverridesParser.create().parse_overrides([o for o in named if o.startswith("hydra.sweeper.")]):
            OmegaConf.update(sweeper, o.key_or_group[len("hydra.sweeper."):], o.value(), force_add=True)
        config.hydra.sweeper = sweeper
        config.hydra.overrides.hydra += [o for o in recorded.hydra.overrides.hydra if o.startswith("hydra/sweeper=")
                                         and o not in named]  # the jobs are composed with it too
        if not any(o.startswith("hydra/launcher=") for o in named):
            config.hydra.launcher = recorded.hydra.launcher  # the same launcher, unless the command names one


def count_jobs(config) -> int:
    """The jobs a sweep launches: its grid's size, or a search's trials (rejected ones do not count)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from cnnexp.compose import task_overrides
    from cnnexp.sweeps.search import is_search

    if is_search(config.hydra.sweeper):
        return int(config.hydra.sweeper.n_trials)
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    lines = [f"{k}={v}" for k, v in params.items()] + task_overrides(config.hydra)  # as Hydra: the command line wins
    return sum(len(batch) for batch in BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(lines), None))
