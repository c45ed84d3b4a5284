"""A stop asked for by a signal — Ctrl-C, SIGTERM, SLURM's SIGUSR1/SIGUSR2 — is never lost.

The handler raises KeyboardInterrupt, which Lightning turns into a graceful, recorded stop —
except where raising is unsafe: in a finaliser (`__del__`, a weakref callback), where Python
would drop it after printing "Exception ignored … KeyboardInterrupt", or in an import, where a
C++ extension (torch) aborts the process on it. There the handler only remembers the signal,
and the next safe point raises it: `callbacks.stop_guard.StopGuard` at the next batch, the
search's loop at its next look (`check`). One that lands where no frame shows it (a C callback)
is dropped by Python without a word, and the same safe points raise it again. No torch here:
`cnnexp.train` installs the handlers before anything is checked.
"""

from __future__ import annotations

import signal
import sys
from typing import Iterable, Optional

received: Optional[int] = None  # the signal that asked this process to stop

UNSAFE_FILES = ("weakref.py", "_weakrefset.py", "<frozen importlib._bootstrap>")


def install(signals: Iterable[int]) -> None:
    for sig in signals:
        signal.signal(sig, _stop)
    quiet_writer_threads()
    if sys.unraisablehook is not _quiet:
        _quiet.default = sys.unraisablehook  # type: ignore[attr-defined]
        sys.unraisablehook = _quiet


def _stop(signum, frame) -> None:
    global received
    received = signum
    if not unsafe(frame):
        raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")


def unsafe(frame) -> bool:
    """The main thread is in a finaliser or an import: a KeyboardInterrupt raised there would
    be printed and dropped, or abort the process."""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__del__" or code.co_filename.endswith(UNSAFE_FILES):
            return True
        frame = frame.f_back
    return False


def _quiet(unraisable) -> None:
    """sys.unraisablehook: a stop dropped where no frame showed it is not a traceback for the user."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and received is not None:
        return
    _quiet.default(unraisable)  # type: ignore[attr-defined]


def raise_if_asked() -> None:
    """At a safe point: raise the stop a signal asked for, if it has not stopped this process yet."""
    if received is not None:
        raise KeyboardInterrupt(f"received {signal.Signals(received).name}")


def exit_code() -> int:
    """128 + the number of the signal that stopped this process, as a shell reports one it ended:
    130 for Ctrl-C, 143 for SIGTERM, 141 for a console that went away."""
    return 128 + int(received if received is not None else signal.SIGINT)


def cause() -> str:
    """What asked for the stop, for the record's reason: ` (received SIGTERM)`, or `` when none did."""
    if received is None:
        return ""
    name = signal.Signals(received).name
    return f" (received {name}: its console was closed)" if received == signal.SIGPIPE else f" (received {name})"


def run_command(main, leaves: str = "nothing was written") -> None:
    """A command that reads, or writes only at its end through the atomic writer (eval, predict,
    export, compare, summary, check, shapes): Ctrl-C or SIGTERM at any moment is one line and the
    shell's code for the signal — in an import too (where raising would abort torch, and nothing
    is being written, the process ends at once), or inside Lightning's test loop, which answers a
    stop with exit 1 and no word."""
    import os

    def stop(signum, frame) -> None:
        global received
        received = signum
        if unsafe(frame):
            _said(leaves)
            os._exit(exit_code())
        raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    quiet_writer_threads()
    try:
        main()
    except KeyboardInterrupt:
        _said(leaves)
        raise SystemExit(exit_code()) from None
    except OSError as e:  # a path the system refuses (a name too long, a full disk) that no caller named
        from cnnexp.core.errors import fail
        from cnnexp.core.files import os_error_line

        fail(os_error_line(e))
    except SystemExit as e:
        if received is not None and e.code not in (0, None, 2):  # Lightning's own exit on a stop
            _said(leaves)
            raise SystemExit(exit_code()) from None
        raise


def _said(leaves: str) -> None:
    try:
        print(f"cnnexp: interrupted{cause()}; {leaves}", file=sys.stderr, flush=True)
    except (OSError, ValueError):  # a console that went away
        pass


def quiet_writer_threads() -> None:
    """A background writer's refused write (TensorBoard's event thread under `ulimit -f` or on a full
    disk) is one line, not a thread's traceback; the command's own writes say the rest."""
    import threading

    if getattr(threading.excepthook, "cnnexp", False):
        return
    default = threading.excepthook

    def hook(args) -> None:
        if isinstance(args.exc_value, OSError):
            from cnnexp.core.files import os_error_line

            name = getattr(args.thread, "name", "a background thread")
            print(f"cnnexp: error: {os_error_line(args.exc_value, where=f'a file {name} writes (TensorBoard events)')}",
                  file=sys.stderr)
            return
        default(args)

    hook.cnnexp = True  # type: ignore[attr-defined]
    threading.excepthook = hook

