"""`-m resume=SWEEP`: the sweep recorded in a folder, launched again into that folder. Each job
then skips, continues or re-runs its own run (run/resume.py's `in_earlier_launch`).

In the order a resumed sweep meets them: the options a command may add to the recorded sweeper
(before Hydra composes), the recorded sweep relaunched (the Hydra callback, before any job) once
what it would replay is known to be data, the first launch's multirun.yaml kept aside and put
back, and what this launch left — nothing, for a resume that only skipped runs.

A folder someone hands you is data: reading it never runs what it holds. A resume replays the
recorded settings, sweeper and launcher as values, checked as if typed (run/slurm.py checks what
goes into a job script), and replays nothing that would act — an interpolation (`${oc.env:…}`, a
resolver), a nested `_target_`, shell lines (hydra.launcher.setup), srun's arguments, extra
sbatch options, a job folder elsewhere — unless the command line gives it again.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, read_write

from cnnexp.config.overrides import hydra_quoted, key_value
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
        recorded = read_recorded_sweep(Path(folder).expanduser())
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
    from cnnexp.records.reading import refuse_links_out

    refuse_links_out(folder, "resume", depth=4)  # its runs' logs, events, checkpoints: none written elsewhere
    recorded = read_recorded_sweep(folder)  # a link out, a pipe, not YAML: its own line (RecordError)
    try:
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
    replays_only_data(config, recorded, folder, typed, [o for o in overrides if o not in new])
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


# ------------------------------------------------------------------ what a record may not make a resume do
ACTING = {  # recorded launcher keys that would act for whoever wrote the folder (beyond today's conf)
    "setup": "shell lines each job runs", "teardown": "shell lines each job runs",
    "srun_args": "arguments srun starts each job with", "additional_parameters": "sbatch options",
    "submitit_folder": "the folder job scripts are written to and run from", "temp_folder": "a folder joblib writes to"}


def recorded_locations_missing(untyped: list) -> list:
    """The recorded overrides naming a folder (data.root, paths.*) that is not there: a resume would
    make it, download data into it or put a store there, on the folder's word."""
    from cnnexp.config.schema import PATH_KEYS
    from cnnexp.data.idx import present

    mnist = not any(o.startswith("data=") and not o.endswith("=mnist") for o in untyped)

    def missing(key: str, value: str) -> bool:
        folder = Path(value.strip("'\"")).expanduser()
        return not folder.is_dir() or key == "data.root" and mnist and not present(folder)  # MNIST not downloaded there

    return [o for o in untyped if key_value(o)[0].lstrip("+~") in PATH_KEYS and missing(key_value(o)[0].lstrip("+~"),
                                                                                         key_value(o)[1])]


def replays_only_data(config: DictConfig, recorded: DictConfig, folder: Path, typed, untyped: list) -> None:
    """The recorded overrides the command does not give again (`untyped`), the recorded sweeper and
    — unless the command names a launcher — the recorded launcher: values only, each launcher
    value checked as if typed. Raises the RunError or SettingsError of the first that is not."""
    from cnnexp.run.slurm import check_launcher

    record = recorded_sweep(folder)
    interpolating = [o for o in untyped if "${" in o]
    if interpolating:
        raise RunError(f"resume={typed}: {record} records {interpolating[0]}, an interpolation a resume would "
                       "resolve (it can read the environment or make folders); a resume replays none from a "
                       "folder — give it again on the command line if you mean it")
    elsewhere = recorded_locations_missing(untyped)
    if elsewhere:
        raise RunError(f"resume={typed}: {record} records {elsewhere[0]}, a folder that is not there (or holds no MNIST); "
                       "a resume makes no folder and downloads nothing where a record says — give it again on the command line "
                       "if you mean it")
    named = OmegaConf.to_container(config.hydra.overrides.hydra, resolve=False)
    replay = not any(o.startswith("hydra/launcher=") for o in named)
    today = todays_hydra(recorded, typed)
    for group in ("sweeper", "launcher") if replay else ("sweeper",):
        mine, theirs = (OmegaConf.to_container(n[group], resolve=False) for n in (today, recorded.hydra))
        found = not_data(theirs, mine, f"hydra.{group}", {key_value(o)[0] for o in named})
        if found:
            raise RunError(f"resume={typed}: {record} records {found[0]}={found[1]!r}, "
                           + ("a `_target_` a resume would call" if found[0].endswith("._target_") else
                              "an interpolation a resume would resolve (it can read the environment or make folders)")
                           + f"; a resume replays none from a folder — {again(typed, recorded, group)}")
    if replay:
        mine, theirs = (OmegaConf.to_container(n.launcher, resolve=False) for n in (today, recorded.hydra))
        for key, what in ACTING.items():
            value = theirs.get(key)
            if value not in (None, [], {}) and value != mine.get(key):
                raise RunError(f"resume={typed}: {record} records hydra.launcher.{key}={value!r} ({what}); a resume "
                               f"replays none from a folder — {again(typed, recorded, 'launcher')}")
        check_launcher(config, recorded.hydra.launcher, recorded=record)
        if "submitit" in str(theirs.get("_target_")):  # what its jobs will be submitted with, as recorded
            shown = " ".join(f"hydra.launcher.{k}={v}" for k, v in theirs.items()
                             if v not in (None, [], {}) and k != "_target_" and "${" not in str(v))
            print(f"resume: jobs go through the recorded launcher, checked as if typed: {shown}")


def todays_hydra(recorded: DictConfig, typed) -> DictConfig:
    """Today's hydra node for the recorded sweeper and launcher, unresolved: the interpolations conf/ itself writes."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    choices = OmegaConf.select(recorded, "hydra.runtime.choices", default=None) or {}
    groups = [f"{g}={choices[g]}" for g in ("hydra/launcher", "hydra/sweeper") if choices.get(g)]
    try:
        return GlobalHydra.instance().config_loader().load_configuration("train", groups, RunMode.MULTIRUN).hydra
    except Exception as e:
        raise RunError(f"resume={typed}: the recorded sweep no longer composes ({str(e).splitlines()[0][:200]})") from None


def not_data(theirs, mine, path: str, typed_keys: set, depth: int = 0) -> tuple | None:
    """(key, value) of the first recorded entry that would act: a `_target_` below the plugin's own,
    or an interpolation conf/ does not write there (and the command does not set)."""
    if path in typed_keys:
        return None
    if isinstance(theirs, dict):
        for k, v in theirs.items():
            if k == "_target_" and depth > 0:
                return f"{path}._target_", v
            found = not_data(v, mine.get(k) if isinstance(mine, dict) else None, f"{path}.{k}", typed_keys, depth + 1)
            if found:
                return found
    elif isinstance(theirs, list):
        for i, v in enumerate(theirs):
            found = not_data(v, mine[i] if isinstance(mine, list) and i < len(mine) else None, f"{path}[{i}]",
                             typed_keys, depth + 1)
            if found:
                return found
    elif isinstance(theirs, str) and "${" in theirs and theirs != mine:
        return path, theirs
    return None


def again(typed, recorded: DictConfig, group: str) -> str:
    choice = OmegaConf.select(recorded, f"hydra.runtime.choices.hydra/{group}", default=None) or "…"
    if group == "sweeper":
        return f"give it again on the command line if you trust it: -m resume={typed} hydra.sweeper.KEY=…"
    return (f"if you trust it, give the launcher again on the command line: -m resume={typed} "
            f"hydra/launcher={choice} hydra.launcher.KEY=… (a launcher named there replaces the recorded one)")


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


def read_recorded_sweep(folder: Path) -> DictConfig:
    """The first launch's multirun.yaml as data: a plain file of the folder (records/reading.py),
    never resolved here; RecordError (one line) for anything else."""
    from cnnexp.records.folder import read_config

    folder = Path(folder)
    return OmegaConf.create(read_config(folder, recorded_sweep(folder), values_only=False))


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
