"""One command-line override as a user types it (`+model.kernel_size=5`): its key and its value,
split in this one place for everything that reads overrides back from a record — HParams, run
names, the sweep summary — without Hydra or OmegaConf."""

from __future__ import annotations

import re
from typing import Tuple

PLAIN_VALUE = re.compile(r"[\w./+\-]*", re.ASCII)  # what Hydra reads unquoted as a string: ASCII, no `~` …
NOT_TEXT = re.compile(r"[-+]?(\d[\d_]*(\.[\d_]*)?|\.\d[\d_]*)([eE][-+]?\d+)?|true|false|[-+]?(inf|nan)", re.I)
QUOTE_OR_END = re.compile(r"(\\*)('|\Z)")  # backslashes Hydra un-escapes: those before a quote or the end


def key_value(override: str) -> Tuple[str, str]:
    """`+model.kernel_size=5` → ("model.kernel_size", "5"): one override as typed (a key holds no "=")."""
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def hydra_quoted(value: str) -> str:
    """A folder's path as one Hydra value that Hydra reads back exactly: quoted when it holds `=`,
    `,`, a quote, a space, `#`, `~`, a newline, a letter outside ASCII … or would read as a number
    or a boolean (a sweep's run folders are named `kernel_size=3,seed=1`). Inside quotes Hydra
    un-escapes only backslashes before a quote or the end, so only those are doubled; `${…}` stays
    an interpolation."""
    if PLAIN_VALUE.fullmatch(value) and not NOT_TEXT.fullmatch(value):
        return value
    return "'" + QUOTE_OR_END.sub(lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value) + "'"
