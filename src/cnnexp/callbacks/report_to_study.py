"""A search trial's job reports its monitored metric to the study after each validation, stops
when the pruner says so, and stamps the trial's heartbeat while it runs (`hydra/sweeper=optuna`,
see `cnnexp.search.loop`).

Optuna's own `PyTorchLightningPruningCallback` (optuna-integration) needs the Trial object in the
training process; this one re-opens the trial from the storage the sweep folder records, so every
launcher works — a database only where the job's own launch named it (`job_storage`), never on the
folder's word. Under DDP rank 0 holds the trial and decides; the decision is broadcast, so that
every rank stops in the same epoch (a rank that stopped alone would leave the others waiting).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Set

from lightning.pytorch.callbacks import Callback

from cnnexp.core.errors import UserError
from cnnexp.search.options import SearchOptions, is_search
from cnnexp.search.loop import Heartbeat
from cnnexp.search.study import is_search_folder, load_study, name_storage, pruner

log = logging.getLogger("cnnexp")


class ReportToStudy(Callback):
    def __init__(self, trial=None, monitor: str = "", pruner: str = "none", heartbeat: Optional[Heartbeat] = None):
        self.trial, self.monitor, self.pruner, self.heartbeat = trial, monitor, pruner, heartbeat  # trial: rank 0's
        self.reported: Set[int] = set()
        self.pruned: Optional[str] = None  # why, once the pruner stopped the run

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        decision = self.decide(trainer) if self.trial is not None else None
        if trainer.world_size > 1:
            decision = trainer.strategy.broadcast(decision, src=0)
        if decision:
            self.pruned = decision
            trainer.should_stop = True

    def decide(self, trainer) -> Optional[str]:
        value = trainer.callback_metrics.get(self.monitor)
        epoch = trainer.current_epoch
        if value is None or epoch in self.reported:
            return None
        self.reported.add(epoch)
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            return (f"pruned after epoch {epoch + 1} by the {self.pruner} pruner "
                    f"({self.monitor} {float(value):.4f} trails the other trials at that epoch)")
        return None


def trial_reporter(run_dir: Path) -> Optional[ReportToStudy]:
    """The callback for a run that is one of a search's trials (its sweep folder records the
    study), on every rank; rank 0 finds the trial and beats its heartbeat."""
    if not is_search_folder(Path(run_dir).parent):
        return None
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank != 0:
        return ReportToStudy()
    import optuna
    from optuna.trial import TrialState

    name_storage(job_storage())
    try:
        study = load_study(Path(run_dir).parent, write=True)
        options = SearchOptions.from_node(study.user_attrs.get("options"))
        monitor = str(study.user_attrs["monitor"])
    except (UserError, KeyError, TypeError, ValueError) as e:  # the run trains all the same; rank 0's no-op
        log.warning("%s — this run reports nothing to the search's study", e)  # still answers the other ranks
        return ReportToStudy()
    study.pruner = pruner(options)
    trial = next((t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                  if t.user_attrs.get("run") == Path(run_dir).name), None)
    if trial is None:
        return ReportToStudy()
    heartbeat = Heartbeat(study._storage, options.heartbeat_s, ends_when_told=True)
    heartbeat.add(trial._trial_id)
    if len(study.directions) > 1:  # Optuna takes no intermediate values of a multi-objective trial (optuna#3450)
        return ReportToStudy(heartbeat=heartbeat)
    return ReportToStudy(optuna.trial.Trial(study, trial._trial_id), monitor, options.pruner,
                         heartbeat)


def job_storage() -> Optional[str]:
    """In a search's trial job: the database URL its launch named (the job's own Hydra config,
    composed from that launch's command line), or None."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if not HydraConfig.initialized():
        return None
    sweeper = HydraConfig.get().sweeper
    value = OmegaConf.select(sweeper, "storage", default=None) if is_search(sweeper) else None
    return str(value) if value is not None and "://" in str(value) else None
