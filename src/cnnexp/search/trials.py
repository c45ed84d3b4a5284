"""What a search's trials say in its study: which did not train (`skipped`), telling a trial's
outcome, the settings check a trial passes before it takes a slot, and the trials a search has
left to train (what its cost estimate is for)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple

from omegaconf import DictConfig, OmegaConf

from cnnexp.core.errors import UserError
from cnnexp.search.objectives import plan_costs
from cnnexp.search.options import SearchOptions
from cnnexp.search.space import grid_points, point_key, space_of
from cnnexp.search.study import StudyInterrupted, StudyMissing, is_search_folder, load_study, named_storage


def skipped(trial) -> bool:
    """A trial that did not train: its settings failed the shape check, or had run already, or its
    worker stopped before it started."""
    return bool(trial.user_attrs.get("rejected") or "duplicate_of" in trial.user_attrs
                or trial.user_attrs.get("unstarted"))


def settings_problem(job: DictConfig) -> Optional[str]:
    """The settings and shape check of `cnnexp.config.settings`, without data or torch: None if fine."""
    return checked(job)[0]


def checked(job: DictConfig) -> Tuple[Optional[str], Dict[str, int]]:
    """(the settings and shape check's problem or None, the setting's free costs from its shape
    plan: macs, params) — without data or torch."""
    from cnnexp.config.compose import user_config
    from cnnexp.config.settings import load

    try:
        settings = load(OmegaConf.to_container(user_config(job), resolve=True))
    except UserError as e:
        return str(e), {}
    return None, plan_costs(settings.model.layers)


def stored(study, trial):
    """The trial as the study stored it (one row read, not every trial of the study)."""
    return study._storage.get_trial(trial._trial_id)


def tell(study, trial, **outcome) -> None:
    """study.tell; the grid sampler's call to study.stop() once its grid is done is not an error
    here (the trial is stored before it), as the loop ends by its own count."""
    try:
        study.tell(trial, **outcome)
    except RuntimeError as e:
        if "Study.stop" not in str(e):
            raise


def trials_left(config: DictConfig) -> int:
    """Trials a search still has to train: n_trials (a grid: at most its points), less those a
    resumed search's study holds already — what its cost estimate is for."""
    options = SearchOptions.from_node(config.hydra.sweeper)
    space, _ = space_of(config, options)
    points = grid_points(space) if options.sampler == "grid" else None
    budget = options.n_trials if points is None else min(options.n_trials, len(points))
    sweep_dir = Path(str(config.hydra.sweep.dir))
    if not OmegaConf.select(config, "resume", default=None) or not is_search_folder(sweep_dir):
        return budget
    try:  # read-only: a study the folder holds, or a database this resume named
        study = load_study(sweep_dir, named=named_storage(config))
    except (StudyMissing, StudyInterrupted):  # still to be created, or to be rolled back by the search: all of it
        return budget
    tried = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished() and not t.user_attrs.get("superseded")]
    left = budget - sum(1 for t in tried if not skipped(t))
    if points is not None:
        left = min(left, len(points - {point_key(t.params) for t in tried}))
    return max(0, left)

