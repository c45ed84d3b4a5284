"""One command-line override as a user types it (`+model.kernel_size=5`): its key and its value,
split in this one place for everything that reads overrides back from a record — HParams, run
names, the sweep summary — without Hydra or OmegaConf."""

from __future__ import annotations

import re
from typing import Tuple

PLAIN_VALUE = re.compile(r"[\w./~+\-]*")  # what Hydra reads as one plain string


def key_value(override: str) -> Tuple[str, str]:
    """`+model.kernel_size=5` → ("model.kernel_size", "5"): one override as typed (a key holds no "=")."""
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def hydra_quoted(value: str) -> str:
    """A folder's path as one Hydra value: quoted when it holds `=`, `,`, a quote, a space…
    (a sweep's run folders are named `kernel_size=3,seed=1`); `${…}` stays an interpolation."""
    if PLAIN_VALUE.fullmatch(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
