"""What a sweep does to its config before launching: only swept keys name its runs (the name
itself is `compose.run_name`), duplicate values run once, and its grid is expanded into the jobs it launches (the one expansion:
the count, the estimate and the resume's bookkeeping all read `grid_jobs`).
Relaunching a recorded sweep (`-m resume=SWEEP`) is `relaunch`'s."""

from __future__ import annotations

import logging
from typing import List

from omegaconf import DictConfig, OmegaConf, read_write

RECIPES = ("experiment", "sweep")  # groups that choose a recipe: left out of names beside what a sweep varies


def name_runs_by_swept_keys(config: DictConfig) -> None:
    """The fixed overrides join hydra's exclude_keys, through the hydra overrides that each
    job's config is composed from, so only swept keys name a run."""
    with read_write(config.hydra.overrides):
        config.hydra.overrides.hydra.append(
            f"hydra.job.config.override_dirname.exclude_keys=[{','.join(name_exclusions(config))}]")


def name_exclusions(config: DictConfig) -> list:
    """The keys left out of a sweep's run names: the fixed ones, and conf/'s. A sweep of one
    setting (`-m seed=1`, or a SLURM run) varies nothing: its run is named by what the command set."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from cnnexp.config.compose import task_overrides

    task = OverridesParser.create().parse_overrides(task_overrides(config.hydra))
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    swept = {o.key_or_group for o in task if o.is_sweep_override()} | set(params)
    fixed = {o.key_or_group for o in task} - swept
    exclude = list(config.hydra.job.config.override_dirname.exclude_keys) + sorted(fixed)
    if not swept:
        exclude = [k for k in config.hydra.job.config.override_dirname.exclude_keys if k not in RECIPES]
    return exclude


def drop_duplicate_values(config: DictConfig) -> None:
    """`model.kernel_size=3,5,3` would run 3 twice into one folder: each value runs once."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from cnnexp.config.compose import task_overrides

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


def grid_jobs(config: DictConfig) -> List[List[str]]:
    """Each job's overrides, as Hydra's basic sweeper will launch them (the command line wins)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from cnnexp.config.compose import task_overrides

    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    lines = [f"{k}={v}" for k, v in params.items()] + task_overrides(config.hydra)
    batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(lines), None)
    return [list(job) for batch in batches for job in batch]


def count_jobs(config) -> int:
    """The jobs a sweep launches: its grid's size, or a search's trials (rejected ones do not count)."""
    from cnnexp.search.options import is_search

    if is_search(config.hydra.sweeper):
        return int(config.hydra.sweeper.n_trials)
    return len(grid_jobs(config))
