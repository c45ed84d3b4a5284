"""The Hydra side of `hydra/sweeper=optuna` (its options: `cnnexp.search.options`); the
search itself is `cnnexp.search`. Hydra imports this module at every start: it imports
neither optuna nor torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


class OptunaSweeper(Sweeper):
    def __init__(self, **options: Any) -> None:
        self.options = options

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function)

    def sweep(self, arguments: List[str]) -> None:
        from cnnexp.core.errors import UserError, fail
        from cnnexp.records.folder import sweep_config_path
        from cnnexp.search.loop import Search
        from cnnexp.search.options import SearchOptions
        from cnnexp.search.slots import slots_for, start_workers, wait_for
        from cnnexp.search.study import StudyRefused
        from cnnexp.sweeps.callback import SettingsCheck

        try:
            options = SearchOptions.from_node(OmegaConf.create(self.options))
        except UserError as e:
            fail(e)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_config_path(sweep_dir))  # what resume= and cnnexp.summary read
        search = Search(options, self.config,
                        compose=lambda overrides: self.hydra_context.config_loader.load_sweep_config(self.config, overrides),
                        slots=None if options.workers else slots_for(self.launcher, options.n_jobs),
                        lock=SettingsCheck.lock)
        try:
            if options.workers:  # K worker jobs join the study; this process waits for them, then summarises
                search.open_study(arguments)
                wait_for(start_workers(self.launcher, options.workers, str(sweep_dir.resolve()), options.storage))
            else:
                search.run(arguments)
        except StudyRefused as e:  # a study not ours, not readable, or in a database not named: nothing ran
            SettingsCheck.abandon()
            fail(e)
