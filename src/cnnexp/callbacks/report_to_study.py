"""A search trial's job reports its monitored metric to the study after each validation and
stops when the pruner says so (`hydra/sweeper=optuna`, see `cnnexp.sweeps.search`).

Optuna's own `PyTorchLightningPruningCallback` (optuna-integration) needs the Trial object in the
training process; this one re-opens the trial from the study's SQLite file, so every launcher works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Set

from lightning.pytorch.callbacks import Callback

from cnnexp.sweeps.search import STUDY_FILE, STUDY_NAME, SearchOptions, storage_url


class ReportToStudy(Callback):
    def __init__(self, trial, monitor: str, pruner: str):
        self.trial, self.monitor, self.pruner = trial, monitor, pruner
        self.reported: Set[int] = set()
        self.pruned: Optional[str] = None  # why, once the pruner stopped the run

    def on_validation_end(self, trainer, pl_module) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        epoch = trainer.current_epoch
        if trainer.sanity_checking or value is None or epoch in self.reported:
            return
        self.reported.add(epoch)
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            self.pruned = (f"pruned after epoch {epoch + 1} by the {self.pruner} pruner "
                           f"({self.monitor} {float(value):.4f} trails the other trials at that epoch)")
            trainer.should_stop = True


def trial_reporter(run_dir: Path) -> Optional[ReportToStudy]:
    """The callback for a run that is one of a search's trials (its sweep folder holds the study)."""
    db = Path(run_dir).parent / STUDY_FILE
    if not db.is_file():
        return None
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage_url(db.parent))
    options = SearchOptions(**study.user_attrs["options"])
    study.pruner = options.make_pruner()
    trial = next((t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                  if t.user_attrs.get("run") == Path(run_dir).name), None)
    if trial is None:
        return None
    return ReportToStudy(optuna.trial.Trial(study, trial._trial_id), study.user_attrs["monitor"], options.pruner)
