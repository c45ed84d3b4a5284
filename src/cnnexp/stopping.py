"""A stop asked for by a signal — Ctrl-C, SIGTERM, SLURM's SIGUSR1/SIGUSR2 — is never lost.

The handler raises KeyboardInterrupt, which Lightning turns into a graceful, recorded stop. A
KeyboardInterrupt that lands in a finaliser (`__del__`) or a background callback is printed as
"Exception ignored" and dropped by Python; `callbacks.stop_guard.StopGuard` raises it again at
the next batch, so the run still ends as interrupted instead of training on. No torch here:
`cnnexp.train` installs the handlers before anything is checked.
"""

from __future__ import annotations

import signal
from typing import Iterable, Optional

received: Optional[int] = None  # the signal that asked this process to stop


def install(signals: Iterable[int]) -> None:
    for sig in signals:
        signal.signal(sig, _stop)


def _stop(signum, frame) -> None:
    global received
    received = signum
    raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")


def cause() -> str:
    """What asked for the stop, for the record's reason: ` (received SIGTERM)`, or `` when none did."""
    if received is None:
        return ""
    name = signal.Signals(received).name
    return f" (received {name}: its console was closed)" if received == signal.SIGPIPE else f" (received {name})"
