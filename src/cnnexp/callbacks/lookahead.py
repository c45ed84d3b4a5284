"""Lookahead weights (Zhang et al. 2019; the EMA of Keller Jordan's airbench speedruns).

Every `lookahead.every` steps the slow weights move toward the trained (fast) ones,
slow ← decay·slow + (1 − decay)·fast, and the network restarts from them; decay ramps up as
decay·(step/total)³, so early steps move the slow weights freely. The last step of each epoch is a
sync too, so the weights validated, checkpointed (best.ckpt, last.ckpt) and tested are always the
slow ones; at the last step of training the network takes the slow weights as they are
(decay 1). Batch-norm statistics are averaged with the weights. Nothing else needs saving: at each
epoch end slow = fast, so a resume starts the slow weights from the checkpoint's.
"""

from __future__ import annotations

import lightning as L
import torch


class Lookahead(L.Callback):
    def __init__(self, every: int, decay: float):
        self.every, self.decay = every, decay
        self.slow = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.slow = [t.detach().clone() for t in self._weights(pl_module)]

    @staticmethod
    def _weights(pl_module):
        return list(pl_module.net.state_dict().values())  # views of the parameters and BN buffers

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step, total = trainer.global_step, max(int(trainer.estimated_stepping_batches), 1)
        epoch_end = batch_idx + 1 >= trainer.num_training_batches
        if step % self.every and not epoch_end and step < total:
            return
        decay = 1.0 if step >= total else self.decay * min(step / total, 1.0) ** 3
        with torch.no_grad():
            for slow, fast in zip(self.slow, self._weights(pl_module)):
                if slow.is_floating_point():
                    slow.lerp_(fast, 1.0 - decay)
                else:  # counters (num_batches_tracked) follow the network
                    slow.copy_(fast)
                fast.copy_(slow)
