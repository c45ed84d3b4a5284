"""Run by test_speed.py: real Lightning DDP on two CPU processes (gloo). At each epoch start every
rank reports the indices its loader will draw; rank 0 gathers them and writes them to a JSON file.

    python tests/ddp_epoch_indices.py SHARED_DATA_ROOT OUT.json
"""

import json
import sys
from pathlib import Path

import lightning as L
from cnnexp.config.compose import compose_config
from cnnexp.data.mnist import MNISTDataModule
from cnnexp.config.settings import load
from cnnexp.tasks.classification import ClassificationTask


class GatherEpochIndices(L.Callback):
    def __init__(self, out: Path):
        self.out, self.epochs = out, []

    def on_train_epoch_start(self, trainer, pl_module):
        mine = trainer.train_dataloader.sampler.indices()
        every = trainer.strategy.all_gather(mine)          # (world_size, share)
        self.epochs.append(every.tolist())

    def on_fit_end(self, trainer, pl_module):
        if trainer.is_global_zero:
            self.out.write_text(json.dumps({"world_size": trainer.world_size, "epochs": self.epochs,
                                            "split": len(trainer.datamodule.train_rows)}))


if __name__ == "__main__":
    root, out = sys.argv[1], Path(sys.argv[2])
    settings = load(compose_config([f"data.root={root}", "logger.tensorboard=false"]))
    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=2, limit_train_batches=2,
                        limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[GatherEpochIndices(out)],
                        default_root_dir=str(out.parent))
    trainer.fit(ClassificationTask(settings), datamodule=MNISTDataModule(settings.data, seed=settings.seed))
