"""What every task shares: settings in the checkpoint, the network, optimizer and schedule."""

from __future__ import annotations

import lightning as L
import torch

from cnnexp import config
from cnnexp.models import build_network


class Task(L.LightningModule):
    """Built from the full run config (a plain dict), which the checkpoint keeps, so that a
    checkpoint alone rebuilds the exact network."""

    def __init__(self, run_config: dict):
        super().__init__()
        # logger=False: HParams are written once, at the end, with real metrics (no −1 placeholder).
        self.save_hyperparameters({"run_config": run_config}, logger=False)
        self.settings = config.load(run_config)
        self.net = build_network(self.settings.model)
        self.example_input_array = torch.zeros(1, *self.settings.model.input_shape)  # for the graph

    def on_fit_start(self) -> None:
        # Denormal floats (tiny late-training gradients) take a slow path on x86 CPUs; as zeros they do not.
        torch.set_flush_denormal(True)

    def configure_model(self) -> None:
        """Memory format and compilation, once the device and precision are known."""
        perf = self.settings.performance
        precision = str(self.trainer.precision) if self._trainer is not None else ""
        channels_last = perf.channels_last is True or (perf.channels_last == "auto" and "bf16" in precision)
        if channels_last:  # NHWC: what oneDNN/cuDNN's bf16 convolutions are fastest with
            self.net = self.net.to(memory_format=torch.channels_last)
        if perf.compile and not isinstance(self.net, torch._dynamo.eval_frame.OptimizedModule):
            self.net = torch.compile(self.net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def configure_optimizers(self):
        o, sc = self.settings.optimizer, self.settings.scheduler
        # fused: one kernel for the whole update instead of a loop over tensors (5–15 % of a CPU step)
        fused = True if self.device.type in ("cpu", "cuda") else None
        if o.name == "sgd":
            optimizer = torch.optim.SGD(self.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        elif o.name == "adamw":
            optimizer = torch.optim.AdamW(self.parameters(), lr=o.lr, weight_decay=o.weight_decay, fused=fused)
        else:
            optimizer = torch.optim.Adam(self.parameters(), lr=o.lr, weight_decay=o.weight_decay, fused=fused)
        if sc.name == "one_cycle":
            schedule = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=sc.max_lr, total_steps=int(self.trainer.estimated_stepping_batches))
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
        return optimizer
