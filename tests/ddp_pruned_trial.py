"""Run by test_search_workers.py: a search trial trained by real Lightning DDP on two CPU
processes (gloo), with the trial's callback on both ranks. Rank 0 holds the trial and the pruner
prunes it after its first validation; every rank writes the epoch it stopped in and why.

    python tests/ddp_pruned_trial.py SHARED_DATA_ROOT SWEEP_FOLDER   (the trial's folder: SWEEP/trial)
"""

import json
import sys
from pathlib import Path

import lightning as L
from cnnexp.callbacks.report_to_study import trial_reporter
from cnnexp.config.compose import compose_config
from cnnexp.data.mnist import MNISTDataModule
from cnnexp.config.settings import load
from cnnexp.tasks.classification import ClassificationTask


class WhereItStopped(L.Callback):
    def __init__(self, reporter, out: Path):
        self.reporter, self.out = reporter, out

    def on_fit_end(self, trainer, pl_module):
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(
            {"epoch": trainer.current_epoch, "pruned": self.reporter.pruned}))


if __name__ == "__main__":
    root, run_dir = sys.argv[1], Path(sys.argv[2]) / "trial"
    settings = load(compose_config([f"data.root={root}", "logger.tensorboard=false"]))
    reporter = trial_reporter(run_dir)  # in each rank's process, as cnnexp.run.trainer builds it
    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=4, limit_train_batches=2,
                        limit_val_batches=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[reporter, WhereItStopped(reporter, run_dir)], default_root_dir=str(run_dir))
    trainer.fit(ClassificationTask(settings), datamodule=MNISTDataModule(settings.data, seed=settings.seed))
