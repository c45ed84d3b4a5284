"""What every task shares: its settings in the checkpoint, the network, optimizer and schedule."""

from __future__ import annotations

import dataclasses

import lightning as L
import torch

from cnnexp.config.own_network import build as build_own, is_own
from cnnexp.config.schema import OPTIMIZERS, Settings


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, step: int, loss: float):
        self.step, self.loss = step, loss
        super().__init__(f"training loss became {loss} at step {step}")


class Task(L.LightningModule):
    """Built from checked settings. The checkpoint keeps them as a plain dict (`run_config`), so a
    checkpoint alone rebuilds the exact network (`run/restore.py`'s `rebuild_task`)."""

    network: type  # each task's nn.Module class, built from settings.model

    def __init__(self, settings: Settings):
        super().__init__()
        # logger=False: HParams are written once, at the end, with real metrics (no −1 placeholder).
        self.save_hyperparameters({"run_config": dataclasses.asdict(settings)}, logger=False)
        self.settings = settings
        self.net = build_own(settings.model) if is_own(settings.model) else self.network(settings.model)
        # for the graph: (1, C, L), (1, C, H, W) or (1, C, D, H, W), as the data gives
        self.example_input_array = torch.zeros(1, *settings.model.input_shape)
        self._train_sums: dict = {}  # log_train's sums since its last point, and their images
        self._train_images = 0

    def on_fit_start(self) -> None:
        # Denormal floats (tiny late-training gradients) take a slow path on x86 CPUs; as zeros they do not.
        torch.set_flush_denormal(True)

    def configure_model(self) -> None:
        """Memory format and compilation, once the device and precision are known."""
        perf = self.settings.performance
        if perf.channels_last is True or (perf.channels_last == "auto" and self._trainer is not None and (
                self.trainer.strategy.root_device.type == "cpu" or "16" in str(self.trainer.precision))):
            # NHWC (NDHWC for volumes): what oneDNN's convolutions (any precision) and cuDNN's 16-bit ones
            # are fastest with; a series' weights have no such layout (torch leaves 3-D tensors as they are)
            layout = {3: torch.channels_last, 4: torch.channels_last_3d}.get(len(self.settings.model.input_shape))
            if layout is not None:
                self.net = self.net.to(memory_format=layout)
        if perf.compile and not isinstance(self.net, torch._dynamo.eval_frame.OptimizedModule):
            self.net = torch.compile(self.net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def log_train(self, batch_idx: int, batch_size: int, **sums: torch.Tensor) -> None:
        """Training metrics, each given as its sum over this batch (a loss × batch size, a count
        of correct answers). Lightning's `self.log` costs about 1 ms a call on a CPU (10 % of a
        speedrun step with two metrics), so the sums are kept here and logged only on the steps
        Lightning writes (every trainer.log_every_n_steps optimizer steps, at the micro-batch that
        steps), at an epoch's last batch and at the run's last step (trainer.max_steps): each point
        is the mean since the previous one, weighted by its images, and the epoch value is the
        exact mean over the epoch's images, as when every step was logged."""
        for name, value in sums.items():
            held = self._train_sums.get(name)
            self._train_sums[name] = value.detach() if held is None else held + value.detach()
        self._train_images += batch_size
        t = self.trainer
        last_of_epoch = batch_idx + 1 >= t.num_training_batches
        stepping = (batch_idx + 1) % t.accumulate_grad_batches == 0  # the micro-batch whose step the optimizer takes
        written = stepping and (self.global_step + 1) % t.log_every_n_steps == 0
        last_of_run = stepping and 0 < t.max_steps <= self.global_step + 1
        if not (written or last_of_epoch or last_of_run):
            return
        for name, total in self._train_sums.items():
            self.log(f"train/{name}", total.float() / self._train_images, on_step=True, on_epoch=True, prog_bar=True,
                     batch_size=self._train_images)
        self._train_sums, self._train_images = {}, 0

    def on_train_epoch_start(self) -> None:
        self._train_sums, self._train_images = {}, 0

    def stop_if_diverged(self, loss: torch.Tensor) -> None:
        """A NaN or infinite training loss ends the run as `diverged` at this step. On the CPU this
        costs nothing; on a GPU it reads the one scalar the progress bar reads anyway."""
        if not torch.isfinite(loss.detach()):
            raise Diverged(self.global_step, float(loss))

    def configure_optimizers(self):
        o, sc = self.settings.optimizer, self.settings.scheduler
        if o.name == "sgd":
            extra = {"momentum": o.momentum, "nesterov": o.nesterov}
        else:  # fused: one kernel for the whole update instead of a loop over tensors (5–15 % of a CPU step)
            extra = {"fused": True if self.device.type in ("cpu", "cuda") else None, "betas": tuple(o.betas)}
        optimizer = getattr(torch.optim, OPTIMIZERS[o.name])(self.parameters(), lr=o.lr,
                                                             weight_decay=o.weight_decay, **extra)
        if sc.name == "one_cycle":
            schedule = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=sc.max_lr, total_steps=int(self.trainer.estimated_stepping_batches))
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
        return optimizer
