"""Early stopping (`callbacks.early_stopping.patience=N`): Lightning's own EarlyStopping, on the
monitor and mode the settings check decided for the best checkpoint, so that "best" and "no
longer improving" mean one thing. Its state (the wait, the best so far) is in every checkpoint,
so a resumed run goes on counting where it was; what it decided goes into results.json.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

log = logging.getLogger("cnnexp")


def early_stopping(settings):
    """The callback, or None when patience is 0 (off, the default)."""
    es, ck = settings.callbacks.early_stopping, settings.callbacks.checkpoint
    if not es.patience:
        return None
    from lightning.pytorch.callbacks import EarlyStopping

    class RecordedEarlyStopping(EarlyStopping):
        """Says when it stops, in one console line (Lightning's own goes to its quietened logger)."""

        def load_state_dict(self, state_dict) -> None:
            """A resume keeps counting (the wait and the best so far); whether it stops again is this
            launch's to say: `resume=RUN callbacks.early_stopping.patience=M` with a larger M goes on."""
            patience = self.patience  # Lightning restores the checkpoint's; this launch's settings say
            super().load_state_dict(state_dict)
            self.patience, self.stopped_epoch, self.stopping_reason_message = patience, 0, None

        def _run_early_stopping_check(self, trainer) -> None:
            said = self.stopping_reason_message
            super()._run_early_stopping_check(trainer)
            if self.stopping_reason_message is not said:  # this check stopped training
                self.stopping_reason_message = _reason(self, trainer)
                if trainer.is_global_zero:
                    log.info("early stopping: %s", self.stopping_reason_message)

    # check_finite=False: a NaN loss is the run's own `diverged`, not an early stop
    return RecordedEarlyStopping(monitor=ck.monitor, mode=ck.mode, patience=es.patience, min_delta=es.min_delta,
                                 check_finite=False, strict=True)


def _reason(es, trainer) -> str:
    """In the record's words: the monitor, how long it waited, the best value, the epoch."""
    by = f" by more than {abs(float(es.min_delta)):g}" if es.min_delta else ""
    return (f"{es.monitor} did not improve{by} in {es.wait_count} validation{'s' * (es.wait_count != 1)} "
            f"(best {float(es.best_score):.4g}, {es.mode}); stopped after epoch {es.stopped_epoch} "
            f"of {trainer.max_epochs} (trainer.max_epochs)")


def stop_record(trainer) -> Optional[Dict[str, Any]]:
    """What results.json says about early stopping: None when it was off; else its settings, and
    whether, when (the epoch, counted from 0 as metrics.csv does) and why it stopped."""
    from lightning.pytorch.callbacks import EarlyStopping

    found = [c for c in trainer.callbacks if isinstance(c, EarlyStopping)]
    if not found:
        return None
    es = found[0]
    stopped = bool(es.stopping_reason_message)
    return {"monitor": es.monitor, "mode": es.mode, "patience": es.patience, "min_delta": abs(float(es.min_delta)),
            "stopped": stopped, "stopped_epoch": es.stopped_epoch if stopped else None,
            "reason": (es.stopping_reason_message or "").strip() or None,
            "best": None if es.best_score is None else round(float(es.best_score), 6)}
