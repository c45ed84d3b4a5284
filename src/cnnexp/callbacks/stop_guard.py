"""StopGuard: a stop signal that Python dropped (see cnnexp.core.stopping) still stops the run."""

from __future__ import annotations

import signal

import lightning as L

from cnnexp.core import stopping


class StopGuard(L.Callback):
    def _check(self, trainer, *args) -> None:
        if stopping.received is not None and not trainer.interrupted:
            raise KeyboardInterrupt(f"received {signal.Signals(stopping.received).name}")

    on_train_batch_end = on_validation_batch_end = on_test_batch_end = _check
