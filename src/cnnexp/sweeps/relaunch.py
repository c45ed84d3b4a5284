"""`-m resume=SWEEP`: the sweep recorded in a folder, launched again into that folder. Each job
then skips, continues or re-runs its own run (run/resume.py's `in_earlier_launch`).

In the order a resumed sweep meets them: the options a command may add to the recorded sweeper
(before Hydra composes), the recorded sweep relaunched (the Hydra callback, before any job), the
first launch's multirun.yaml kept aside and put back, and what this launch left — nothing, for a
resume that only skipped runs.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, read_write

from cnnexp.config.overrides import hydra_quoted
from cnnexp.core.errors import RunError
from cnnexp.core.files import write_atomic
from cnnexp.records.folder import first_sweep_config_path, is_sweep, results_path, sweep_config_path


# ------------------------------------------------------------------ before Hydra composes
def sweeper_options_fit(folder: Path, typed, args: list) -> str | None:
    """`-m resume=SWEEP hydra.sweeper.…=…`: the recorded sweeper those options are composed with
    (`optuna`), or None for a grid, which takes none of them: a grid has no trials to add, and its
    values are what its first launch recorded. Hydra would answer with its own error, exit 1."""
    is_a_sweep(folder, typed)
    choice = recorded_sweeper(folder)
    if choice:
        return choice
    for arg in args:  # only Hydra's batch size leaves a grid's runs as they were
        key = arg.split("=", 1)[0].lstrip("+~")
        if key.startswith("hydra.sweeper.params") or arg.startswith("hydra/sweeper=") and arg != "hydra/sweeper=basic":
            raise RunError(f"resume={typed}: {arg} would change the recorded sweep, a grid; a resume runs what its "
                           "first launch recorded — start a new sweep for new values")
        if key.startswith("hydra.sweeper.") and key != "hydra.sweeper.max_batch_size":
            raise RunError(f"resume={typed}: {arg}: this sweep is a grid, with no trials to add — "
                           f"{key} is an option of a search (hydra/sweeper=optuna). Resume the grid with "
                           f"`-m resume={typed}` alone, or start a search: python -m cnnexp.train -m "
                           f"hydra/sweeper=optuna hydra.sweeper.n_trials=N 'KEY=choice(…)' …")
    return None


def recorded_sweeper(folder: Path) -> str | None:
    """The sweeper a sweep folder was launched with (`optuna`), or None: a resume that sets its
    options (hydra.sweeper.n_trials=…) is composed with it."""
    try:
        recorded = OmegaConf.load(recorded_sweep(Path(folder).expanduser()))
        choice = OmegaConf.select(recorded, "hydra.runtime.choices", default={}).get("hydra/sweeper")
    except Exception:
        return None
    return None if choice in (None, "basic", "BasicSweeper") else str(choice)


def is_a_sweep(folder: Path, typed) -> None:
    if not is_sweep(folder):
        raise RunError(f"resume={typed}: not a sweep folder (no multirun.yaml); pass a folder under "
                       "outputs/multirun/, or drop -m to resume a single run")


# ------------------------------------------------------------------ the recorded sweep, launched again
def resume_sweep(config: DictConfig) -> Path:
    """`-m resume=SWEEP_FOLDER`: the sweep recorded there (its overrides and swept params), run
    again into the same folder; each job then skips, continues or re-runs its own run. Returns
    this launch's own folder, SWEEP/.resume-<time>/."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from cnnexp.config.compose import compose_config, task_overrides

    typed = OmegaConf.select(config, "resume")
    folder = Path(str(typed)).expanduser()
    is_a_sweep(folder, typed)
    try:
        recorded = OmegaConf.load(recorded_sweep(folder))
        overrides = task_overrides(recorded.hydra)
        recorded_hydra = OmegaConf.to_container(recorded.hydra.overrides.hydra, resolve=False)
        params = OmegaConf.select(recorded, "hydra.sweeper.params", default=None)
        params = OmegaConf.to_container(params, resolve=False) if params is not None else {}
        parsed = OverridesParser.create().parse_overrides(overrides)
        parsed += OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
        compose_config([one_value(o) for o in parsed])  # the recorded sweep still composes with today's config
    except Exception as e:
        raise RunError(f"resume={typed}: the recorded sweep no longer composes ({str(e).splitlines()[0][:200]})") from None
    study_is_optunas(folder, typed, config)
    new = [o for o in task_overrides(config.hydra) if not o.startswith("resume=")]
    changed = [o for o in new if o not in overrides]
    if changed:  # applied to some runs and not to those already done, they would make the table lie
        raise RunError(f"resume={typed}: {' '.join(changed)} would change the recorded sweep "
                       f"({' '.join(overrides) or 'its defaults'}); a resume runs what the first launch recorded — "
                       "start a new sweep for new values (hydra.sweeper.n_trials=N extends a search)")
    keep_first_record(folder)
    return _launch_into(config, folder, recorded, overrides, recorded_hydra)


def _launch_into(config: DictConfig, folder: Path, recorded: DictConfig, overrides: list,
                 recorded_hydra: list) -> Path:
    """This launch's config: the recorded overrides, sweeper and launcher, into the sweep's folder;
    its own Hydra records and job logs in SWEEP/.resume-<time>/, so that a finished run's folder
    stays exactly as it was."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    with read_write(config.hydra):
        config.hydra.overrides.task = list(overrides)
        config.hydra.overrides.hydra.append(f"hydra.sweep.dir={hydra_quoted(str(folder.resolve()))}")
        launch = folder.resolve() / f".resume-{time.strftime('%Y-%m-%d_%H-%M-%S')}"
        launch.mkdir(exist_ok=True)
        config.hydra.overrides.hydra.append("hydra.output_subdir=" + hydra_quoted(f"{launch}/job${{hydra.job.num}}"))
        config.hydra.overrides.hydra.append(
            "hydra.job_logging.handlers.file.filename=" + hydra_quoted(f"{launch}/job${{hydra.job.num}}.log"))
        # the recorded sweeper and its space; options this command sets (hydra.sweeper.n_trials=…) win
        named = OmegaConf.to_container(config.hydra.overrides.hydra, resolve=False)  # ${hydra.job.num} stays text
        sweeper = recorded.hydra.sweeper
        for o in OverridesParser.create().parse_overrides([o for o in named if o.startswith("hydra.sweeper.")]):
            OmegaConf.update(sweeper, o.key_or_group[len("hydra.sweeper."):], o.value(), force_add=True)
        config.hydra.sweeper = sweeper
        config.hydra.overrides.hydra += [o for o in recorded_hydra if o.startswith("hydra/sweeper=")
                                         and o not in named]  # the jobs are composed with it too
        if not any(o.startswith("hydra/launcher=") for o in named):
            config.hydra.launcher = recorded.hydra.launcher  # the same launcher, unless the command names one
    return launch


def one_value(o) -> str:
    """An override with one of its sweep's values (the start of an interval): enough to compose."""
    if not o.is_sweep_override():
        return o.input_line
    if o.is_interval_sweep():
        return f"{o.get_key_element()}={o.value().start}"
    return f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}"


def study_is_optunas(folder: Path, typed, config: DictConfig) -> None:
    """A search's study, opened read-only before anything is launched (cnnexp.search.study): a
    corrupt or foreign file, or a database this command did not name, is refused in one line."""
    from cnnexp.search.study import (StudyInterrupted, StudyMissing, StudyRefused, is_search_folder, load_study,
                                     named_storage)

    if not is_search_folder(folder):
        return
    try:
        load_study(folder, named=named_storage(config))
    except (StudyMissing, StudyInterrupted):  # the resume creates the study, or rolls back a killed write
        return
    except StudyRefused as e:
        raise RunError(f"resume={typed}: {e}") from None


# ------------------------------------------------------------------ the first launch's record
def recorded_sweep(folder: Path) -> Path:
    """The first launch's multirun.yaml (docs/records.md: it never changes)."""
    first = first_sweep_config_path(folder)
    return first if first.is_file() else sweep_config_path(folder)


def keep_first_record(folder: Path) -> None:
    """Before a resume's sweeper writes multirun.yaml over, the first launch's is kept aside."""
    if not first_sweep_config_path(folder).is_file():
        write_atomic(first_sweep_config_path(folder), sweep_config_path(folder).read_bytes())


def restore_first_record(folder: Path, launch: Path | None) -> None:
    """multirun.yaml back as the first launch wrote it; the resume's own goes to its .resume-<time>/."""
    first, current = first_sweep_config_path(folder), sweep_config_path(folder)
    if not first.is_file() or not current.is_file():
        return
    written, kept = current.read_bytes(), first.read_bytes()
    if written != kept:
        if launch is not None and launch.is_dir():
            write_atomic(sweep_config_path(launch), written)
        write_atomic(current, kept)


# ------------------------------------------------------------------ what a launch left
def runs_state(folder: Path) -> dict:
    """Each run folder of a sweep, with its results.json's time (None: none yet): a launch that
    started, continued or failed any run changes it; one that only skipped runs ended ok does not.
    Under "first record", whether multirun.yaml's first bytes were kept aside yet."""
    folder = Path(folder)
    runs = {d.name: results_path(d).stat().st_mtime_ns if results_path(d).is_file() else None
            for d in folder.iterdir() if d.is_dir() and not d.name.startswith((".", "_"))}
    return {"runs": runs, "first record": first_sweep_config_path(folder).is_file()}


def ran_nothing(folder: Path, before: dict | None) -> bool:
    """A resume that only skipped runs (every one had ended ok), as runs_state tells."""
    return before is not None and runs_state(folder)["runs"] == before["runs"]


def forget_launch(folder: Path, launch: Path, before: dict) -> None:
    """A resume that ran nothing leaves the sweep folder as it found it: its .resume-<time>/ and
    the first record it kept aside go (multirun.yaml is back as first written)."""
    shutil.rmtree(launch, ignore_errors=True)
    first = first_sweep_config_path(folder)
    if not before["first record"] and first.is_file() and first.read_bytes() == sweep_config_path(folder).read_bytes():
        first.unlink()
