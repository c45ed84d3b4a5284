"""`python -m cnnexp.train [overrides]`: check the settings, train, test the best checkpoint.

    python -m cnnexp.train model=cnn3 trainer.max_epochs=15
    python -m cnnexp.train -m model.kernel_size=3,5,7 model.stride=1,2
    python -m cnnexp.train resume=outputs/2026-11-25/10-31-02
    python -m cnnexp.train trainer=ddp trainer.devices=2 hydra/launcher=slurm   # one job of 2 tasks

Hydra composes conf/ with the overrides; `cnnexp.run.lifecycle` does the rest (see its docstring).
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from cnnexp import CONF_DIR
from cnnexp.core import stopping
from cnnexp.config.compose import check_override_keys, quote_folders, register_resolvers, task_overrides
from cnnexp.core.errors import RunError, UserError, fail
from cnnexp.records.folder import checkpoint_path
from cnnexp.run.outcome import FailFast
from cnnexp.core.console import command


@hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> dict:
    from cnnexp.run.lifecycle import run

    hc = HydraConfig.get()
    run_dir, overrides, multirun = Path(hc.runtime.output_dir), task_overrides(hc), hc.mode == RunMode.MULTIRUN
    try:
        return run(cfg, run_dir, overrides, multirun)
    except KeyboardInterrupt:
        if multirun:  # stopped before its record was written: it says interrupted, not that it never began
            from cnnexp.sweeps.callback import record_stopped_job

            record_stopped_job(run_dir, overrides)
        raise


def cli() -> None:
    if any(a.startswith("hydra/launcher=") for a in sys.argv[1:]) and not {"-m", "--multirun"} & set(sys.argv[1:]):
        sys.argv.insert(1, "-m")  # a launcher runs jobs of a multirun: one run through SLURM is a sweep of one
    try:  # overrides Hydra would reject with a traceback or the wrong advice, named first
        with_sweeper_of_resumed_search(sys.argv)
        confirmed_class_of_resumed_run(sys.argv)
        sys.argv[1:] = quote_folders(sys.argv[1:])
        check_override_keys(sys.argv[1:])
    except UserError as e:
        fail(e)
    register_resolvers()
    stopping.install((signal.SIGINT, signal.SIGTERM))  # a SIGTERM ends a run as Ctrl-C does: recorded
    try:
        main()
    except KeyboardInterrupt as stop:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the summary short
        interrupted(stop)
    except FailFast as stop:
        stopped_early(stop)


def confirmed_class_of_resumed_run(argv: list) -> None:
    """`resume=RUN model._target_=pkg.Class`: the user's word for a model=own run's class (a folder's
    word imports no code: config.own_network); Hydra composes before the resume is read, so it is
    taken off the command line here, and the record's class must be this one."""
    from cnnexp.config.own_network import reading_record, typed

    resume = next((a.split("=", 1)[1].strip("'\"") for a in argv[1:] if a.startswith("resume=")), None)
    if not resume:
        return
    reading_record(resume)  # a run's config.yaml, or a sweep's recorded overrides: each job needs the user's word
    for arg in [a for a in argv[1:] if a.partition("=")[0].lstrip("+") == "model._target_"]:
        typed(arg.partition("=")[2])
        argv.remove(arg)


def with_sweeper_of_resumed_search(argv: list) -> None:
    """`-m resume=SEARCH hydra.sweeper.n_trials=3`: Hydra composes the command before the resume
    is read, so the recorded sweeper (hydra/sweeper=optuna) is named for it; a grid's resume,
    which takes no such option, is refused in one line."""
    args = argv[1:]
    resume = next((a.split("=", 1)[1].strip("'\"") for a in args if a.startswith("resume=")), None)
    sweeper = [a for a in args if a.lstrip("+~").startswith("hydra.sweeper.") or a.startswith("hydra/sweeper=")]
    if not resume or not sweeper:
        return
    from cnnexp.records.folder import is_sweep
    from cnnexp.sweeps.relaunch import sweeper_options_fit

    multirun = bool({"-m", "--multirun"} & set(args))
    if not multirun and not is_sweep(Path(resume).expanduser()):  # Hydra: "Key 'n_trials' not in 'BasicSweeperConf'"
        raise RunError(f"{sweeper[0]}: an option of a sweep's sweeper; resume={resume} continues one run, which "
                       "takes none — drop it (or resume a search with -m resume=SEARCH_FOLDER)")
    choice = sweeper_options_fit(Path(resume).expanduser(), resume, sweeper)  # a grid takes none: a UserError
    if not multirun:  # a search's folder, resumed without -m: the option is its sweeper's
        raise RunError(f"resume={resume}: a search's folder; its sweeper's options go with -m: "
                       + command("train", "-m", f"resume={resume}", *sweeper))
    if choice and not any(a.startswith("hydra/sweeper=") for a in args):
        argv.append(f"hydra/sweeper={choice}")  # after -m: Hydra takes the overrides as one run of words


def stopped_early(stop) -> None:
    """sweep_options.fail_fast: the summary of what ran, and which run stopped the sweep."""
    from cnnexp.sweeps.callback import SettingsCheck
    from cnnexp.sweeps.summarize import write_summary

    if SettingsCheck.sweep_dir is not None:
        try:
            write_summary(SettingsCheck.sweep_dir, SettingsCheck.replicate_keys)
        except UserError as e:  # printed, but not written (sweeps.summarize.SummaryNotSaved)
            print(f"cnnexp: error: {e}", file=sys.stderr)
    print(f"cnnexp: the sweep stopped after its first failure ({stop.run_dir.name}; sweep_options.fail_fast=true); "
          "summary.csv lists what ran", file=sys.stderr)
    raise SystemExit(1)


def interrupted(stop: KeyboardInterrupt) -> None:
    """One line on how to go on; a sweep first gets the summary of what ran."""
    from cnnexp.sweeps.callback import SettingsCheck

    sweep = SettingsCheck.sweep_dir
    SettingsCheck.record_unstarted()  # a grid's job stopped inside Hydra, before its own code ran
    last = SettingsCheck.stop() if sweep is not None and sweep.is_dir() else None  # its summary, by the last out
    SettingsCheck.release()
    if last is False:
        print(f"cnnexp: interrupted: this worker stopped; other workers of the search in {sweep} still run (or "
              f"stop), and the last of them to end writes its summary. Join it again with: "
              f"{command('train', '-m', f'resume={sweep}')}", file=sys.stderr)
    elif last:
        print(f"cnnexp: interrupted: the sweep stopped; {sweep}/summary.csv lists what ran. "
              f"Continue it with: {command('train', '-m', f'resume={sweep}')}", file=sys.stderr)
    elif getattr(stop, "run_dir", None) is not None and not stop.recorded:
        from cnnexp.run.outcome import drop_unrecorded_resume

        drop_unrecorded_resume()
        print(f"cnnexp: interrupted before the resume started training; {stop.run_dir} is as it was. "
              f"Continue with: {command('train', f'resume={stop.run_dir}')}", file=sys.stderr)
    elif getattr(stop, "run_dir", None) is not None and not checkpoint_path(stop.run_dir, "last").is_file():
        print(f"cnnexp: interrupted: {stop.reason}; results.json says so. No checkpoint was written whole yet "
              "(the first is written as the first epoch ends), so there is no last.ckpt to continue from: "
              "run it again", file=sys.stderr)
    elif getattr(stop, "run_dir", None) is not None:
        from cnnexp.run.outcome import what_resume_does

        print(f"cnnexp: interrupted: {stop.reason}; results.json says so. {what_resume_does(stop.run_dir)}",
              file=sys.stderr)
    else:
        from cnnexp.run.outcome import drop_unrecorded_run

        drop_unrecorded_run()  # nor is its fresh folder left, holding only Hydra's log
        print("cnnexp: interrupted before training started; nothing was recorded", file=sys.stderr)
    raise SystemExit(stopping.exit_code())


def exit_without_teardown() -> None:
    """The run is recorded and its files closed: exit handlers run and the streams are flushed as at
    any exit, but the interpreter's teardown is skipped — freeing torch's libraries took 1.4 s on
    this 2-core CPU, a seventh of a speedrun. Only a single run of `python -m cnnexp.train` ends
    this way: a sweep's launcher may still be stopping its workers, and a caller of cli() in the
    same process (tests, a notebook) is left to exit as it likes."""
    if {"-m", "--multirun"} & set(sys.argv[1:]):
        return
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()  # what the interpreter itself waits for before its exit handlers
    atexit._run_exitfuncs()  # logging's shutdown, loggers' and launchers' own handlers
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away (`| head`) or a closed stream
            pass
    os._exit(0)


if __name__ == "__main__":
    cli()
    exit_without_teardown()
