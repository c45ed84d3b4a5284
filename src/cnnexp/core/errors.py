"""What a user can get wrong, and the one way it is reported: `cnnexp: error: …`, exit 2.

Every error here is bad input — a setting, a shape, a folder, a checkpoint, a data file — whose
str() is the whole message: what was wrong and what to do. Anything else is a bug and keeps its
traceback. Importing this module does nothing else.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn


class UserError(ValueError):
    """Bad input. str() is the message shown to the user."""


class SettingsError(UserError):
    """A setting that cannot work, named as the user types it."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is not valid: {allowed}")


class ShapeError(UserError):
    """A layer whose output cannot exist. str() names the layer and the worked formula."""


class RunError(UserError):
    """A run folder, checkpoint or image that cannot be used."""


class DataUnavailable(UserError):
    """No source produced the data. str() says what was tried and how to fix it."""


def printable(text) -> str:
    """Text as one line of plain text: a control character (a newline in a folder's name, a
    terminal's escape sequence in a record handed over) shown escaped, never acted on."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def fail(error: BaseException | str, code: int = 2) -> NoReturn:
    """Print the one line (`cnnexp: error: …`) and exit. A control character in it (a newline in a
    folder's name, a terminal escape in a value typed or recorded) is shown escaped, so the line
    stays one and the terminal is not driven by it; only a ShapeError's `try:` lines are lines."""
    lines = str(error).split("\n") if isinstance(error, ShapeError) else [str(error)]
    text = "\n".join(map(printable, lines))
    print(f"cnnexp: error: {text}", file=sys.stderr)
    raise SystemExit(code)
