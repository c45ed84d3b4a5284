"""A grid's settings that cannot work, found before it launches: every job composed and checked
(the settings and the shape plan, no torch), the impossible ones said one line each with why,
and handed to the jobs (an environment variable, which parallel and SLURM jobs inherit), which
record them `refused` without a second error. The estimator reads the same composed settings.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Dict, List, Optional, Tuple

from omegaconf import DictConfig, OmegaConf

from cnnexp.core.console import SWEEP_REFUSED, WIDTH, folded
from cnnexp.core.errors import UserError

log = logging.getLogger("cnnexp")

SAID_WHOLE = 8  # a grid refused whole: its first settings' reasons in full, every other one named
MAX_CHECKED = 512  # jobs checked before launch (~0.1 s each); a larger grid's others are checked as they start

_loaded: Dict[Tuple[str, ...], object] = {}  # a job's overrides → its Settings, or the UserError that refused it


def settings_of(overrides: List[str]):
    """A job's checked settings, or the UserError that refuses them (composed once per launch)."""
    from cnnexp.config.compose import compose_config, user_config
    from cnnexp.config.settings import load
    from cnnexp.tracking.wandb_run import check_wandb

    key = tuple(overrides)
    if key not in _loaded:
        try:
            _loaded[key] = load(user_config(compose_config(list(overrides))))
            check_wandb(_loaded[key])  # logger=wandb this machine cannot run: as refused as a bad setting
        except UserError as e:
            _loaded[key] = e
    return _loaded[key]


def refused_jobs(config: DictConfig) -> Dict[str, str]:
    """Run name → the first line of why its settings cannot work, for each job of a grid."""
    from cnnexp.config.compose import run_name
    from cnnexp.sweeps.naming import grid_jobs, name_exclusions

    exclude, refused = name_exclusions(config), {}
    for job in grid_jobs(config)[:MAX_CHECKED]:
        found = settings_of(job)
        if isinstance(found, UserError):
            refused[run_name(job, exclude)] = str(found).splitlines()[0]
    return refused


def refuse_before_launch(config: DictConfig, jobs: int) -> Optional[str]:
    """Say which of a grid's settings cannot work, one entry each, before any job starts; the jobs
    learn them from the environment. Returns the one error line where none can work (or where
    sweep_options.fail_fast asks that the first failure stop the sweep): nothing is launched then."""
    refused = refused_jobs(config)
    os.environ[SWEEP_REFUSED] = json.dumps(refused)
    if not refused:
        return None
    if len(refused) == jobs or OmegaConf.select(config, "sweep_options.fail_fast", default=False) is True:
        if len(refused) < jobs:  # fail_fast: the first refusal stops the sweep
            name, why = next(iter(refused.items()))
            return f"a setting (sweep_options.fail_fast=true) is refused before launch — {name}: {why}"
        said = list(refused.items())
        rest = [name for name, _ in said[SAID_WHOLE:]]
        return ("every setting of this grid is refused before launch — "
                + "; ".join(f"{name}: {why}" for name, why in said[:SAID_WHOLE])
                + (f"; and {', '.join(rest)} (each: python -m cnnexp.shapes with its settings says why)" if rest else ""))
    log.warning("%d of %d settings refused before launch (they cannot work; the rest run):",
                len(refused), jobs)
    for name, why in refused.items():
        log.warning("%s", folded(f"{name}: {why}", "    ", WIDTH - len("[00:00:00] warning: ")))
    return None

