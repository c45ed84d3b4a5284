"""The Hydra callback (conf/hydra/default.yaml): checks a run before Hydra creates its folder,
names and de-duplicates a sweep's runs, and prints the sweep's summary at its end."""

from __future__ import annotations

import logging
import os
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from cnnexp.compose import task_overrides, user_config
from cnnexp.console import SWEEP_SIZE
from cnnexp.errors import UserError, fail


class SettingsCheck(Callback):
    sweep_dir = None  # the sweep under way, so an interrupted one still gets its summary
    lock = None
    replicate_keys = ("seed",)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from cnnexp.run import check

        try:
            check(user_config(config), task_overrides(config.hydra))  # imports torch only once the settings passed
        except UserError as e:
            fail(e)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Each job is checked on its own (a bad one is recorded as failed); the folder is common.
        from cnnexp.loggers import open_sweep
        from cnnexp.resume import FolderLock
        from cnnexp.run_folder import check_writable
        from cnnexp.sweeps.naming import count_jobs, drop_duplicate_values, name_runs_by_swept_keys, resume_sweep
        from cnnexp.sweeps.search import WorkerLock, check_search, is_search

        try:
            if OmegaConf.select(config, "resume", default=None):
                resume_sweep(config)  # the recorded sweep, into its own folder
            else:
                check_writable(str(user_config(config).paths.output_dir))
            if is_search(config.hydra.sweeper):
                check_search(config)  # its options and space, before the sweep folder exists
            drop_duplicate_values(config)
            name_runs_by_swept_keys(config)
            os.environ[SWEEP_SIZE] = str(count_jobs(config))  # each job's header: [3/12]
            sweep_dir = Path(str(config.hydra.sweep.dir))
            sweep_dir.mkdir(parents=True, exist_ok=True)
            # one process at a time runs a grid sweep's folder; a search's workers share it (joining a running search)
            SettingsCheck.lock = (WorkerLock if is_search(config.hydra.sweeper) else FolderLock)(sweep_dir)
            open_sweep(config, sweep_dir)  # logger=mlflow: the parent run of the trials
        except UserError as e:
            fail(e)
        except Exception:  # Hydra would turn it into a warning and sweep on half set up
            traceback.print_exc()
            raise SystemExit(1)
        if "submitit" in str(OmegaConf.select(config, "hydra.launcher._target_", default="")):
            from cnnexp.slurm import QuietSacct

            logging.getLogger("submitit").addFilter(QuietSacct())
        SettingsCheck.sweep_dir = Path(str(config.hydra.sweep.dir))
        SettingsCheck.replicate_keys = tuple(OmegaConf.select(config, "sweep_options.replicate_keys", default=["seed"]))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from cnnexp.loggers import close_sweep
        from cnnexp.sweeps.summary import finish_sweep

        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            finish_sweep(sweep_dir, SettingsCheck.replicate_keys)
        finally:
            close_sweep(sweep_dir)
