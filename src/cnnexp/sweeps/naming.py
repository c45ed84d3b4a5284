"""What a sweep does to its config before launching: only swept keys name its runs (the name
itself is `compose.run_name`), duplicate values run once, and `-m resume=SWEEP` relaunches the
recorded sweep."""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, read_write

from cnnexp.config.overrides import hydra_quoted

FIRST_RECORD = ".multirun.first.yaml"  # multirun.yaml as the first launch wrote it, kept by the first resume


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
    import logging

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


def one_value(o) -> str:
    """An override with one of its sweep's values (the start of an interval): enough to compose."""
    if not o.is_sweep_override():
        return o.input_line
    if o.is_interval_sweep():
        return f"{o.get_key_element()}={o.value().start}"
    return f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}"


def recorded_sweep(folder: Path) -> Path:
    """The first launch's multirun.yaml (docs/records.md: it never changes)."""
    first = Path(folder) / FIRST_RECORD
    return first if first.is_file() else Path(folder) / "multirun.yaml"


def keep_first_record(folder: Path) -> None:
    """Before a resume's sweeper writes multirun.yaml over, the first launch's is kept aside."""
    from cnnexp.core.files import write_atomic

    if not (Path(folder) / FIRST_RECORD).is_file():
        write_atomic(Path(folder) / FIRST_RECORD, (Path(folder) / "multirun.yaml").read_bytes())


def restore_first_record(folder: Path, launch: Path | None) -> None:
    """multirun.yaml back as the first launch wrote it; the resume's own goes to its .resume-<time>/."""
    from cnnexp.core.files import write_atomic

    first, current = Path(folder) / FIRST_RECORD, Path(folder) / "multirun.yaml"
    if not first.is_file() or not current.is_file():
        return
    written, kept = current.read_bytes(), first.read_bytes()
    if written != kept:
        if launch is not None and launch.is_dir():
            write_atomic(launch / "multirun.yaml", written)
        write_atomic(current, kept)


def runs_state(folder: Path) -> dict:
    """Each run folder of a sweep, with its results.json's time (None: none yet): a launch that
    started, continued or failed any run changes it; one that only skipped runs ended ok does not.
    Under "first record", whether multirun.yaml's first bytes were kept aside yet."""
    folder = Path(folder)
    runs = {d.name: (d / "results.json").stat().st_mtime_ns if (d / "results.json").is_file() else None
            for d in folder.iterdir() if d.is_dir() and not d.name.startswith((".", "_"))}
    return {"runs": runs, "first record": (folder / FIRST_RECORD).is_file()}


def ran_nothing(folder: Path, before: dict | None) -> bool:
    """A resume that only skipped runs (every one had ended ok), as runs_state tells."""
    return before is not None and runs_state(folder)["runs"] == before["runs"]


def forget_launch(folder: Path, launch: Path, before: dict) -> None:
    """A resume that ran nothing leaves the sweep folder as it found it: its .resume-<time>/ and
    the first record it kept aside go (multirun.yaml is back as first written)."""
    import shutil

    folder = Path(folder)
    shutil.rmtree(launch, ignore_errors=True)
    first = folder / FIRST_RECORD
    if not before["first record"] and first.is_file() and first.read_bytes() == (folder / "multirun.yaml").read_bytes():
        first.unlink()


def resume_sweep(config: DictConfig) -> Path:
    """`-m resume=SWEEP_FOLDER`: the sweep recorded there (its overrides and swept params), run
    again into the same folder; each job then skips, continues or re-runs its own run. Returns
    this launch's own folder, SWEEP/.resume-<time>/."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from cnnexp.config.compose import compose_config, task_overrides
    from cnnexp.core.errors import RunError

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
    study_is_optunas(folder, typed)
    new = [o for o in task_overrides(config.hydra) if not o.startswith("resume=")]
    changed = [o for o in new if o not in overrides]
    if changed:  # applied to some runs and not to those already done, they would make the table lie
        raise RunError(f"resume={typed}: {' '.join(changed)} would change the recorded sweep "
                       f"({' '.join(overrides) or 'its defaults'}); a resume runs what the first launch recorded — "
                       "start a new sweep for new values (hydra.sweeper.n_trials=N extends a search)")
    keep_first_record(folder)
    with read_write(config.hydra):
        config.hydra.overrides.task = list(overrides)
        config.hydra.overrides.hydra.append(f"hydra.sweep.dir={hydra_quoted(str(folder.resolve()))}")
        # this launch's Hydra records and job logs go to the sweep's .resume-<time>/, so that a
        # finished run's folder stays exactly as it was
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


def study_is_optunas(folder: Path, typed) -> None:
    """A search's study.db is opened read-only first: a corrupt or foreign file is refused, never
    handed to Optuna (which would add its tables to it)."""
    import sqlite3

    from cnnexp.core.errors import RunError

    db = Path(folder) / "study.db"
    if not db.exists():
        return
    try:
        con = sqlite3.connect(f"file:{db.resolve()}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in con.execute("select name from sqlite_master where type='table'")}
        finally:
            con.close()
    except sqlite3.Error as e:
        raise RunError(f"resume={typed}: {db} is not a readable study ({e}); move it away to start the search "
                       "afresh in a new folder, or restore it from a copy") from None
    if not {"studies", "trials"} <= tables:
        raise RunError(f"resume={typed}: {db} is not an Optuna study (tables: {', '.join(sorted(tables)) or 'none'}); "
                       "move it away or restore the study from a copy") from None


def is_a_sweep(folder: Path, typed) -> None:
    from cnnexp.core.errors import RunError

    if not (Path(folder) / "multirun.yaml").is_file():
        raise RunError(f"resume={typed}: not a sweep folder (no multirun.yaml); pass a folder under "
                       "outputs/multirun/, or drop -m to resume a single run")


def sweeper_options_fit(folder: Path, typed, args: list) -> str | None:
    """`-m resume=SWEEP hydra.sweeper.…=…`: the recorded sweeper those options are composed with
    (`optuna`), or None for a grid, which takes none of them: a grid has no trials to add, and its
    values are what its first launch recorded. Hydra would answer with its own error, exit 1."""
    from cnnexp.core.errors import RunError

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


def count_jobs(config) -> int:
    """The jobs a sweep launches: its grid's size, or a search's trials (rejected ones do not count)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from cnnexp.config.compose import task_overrides
    from cnnexp.search.options import is_search

    if is_search(config.hydra.sweeper):
        return int(config.hydra.sweeper.n_trials)
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    lines = [f"{k}={v}" for k, v in params.items()] + task_overrides(config.hydra)  # as Hydra: the command line wins
    return sum(len(batch) for batch in BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(lines), None))
