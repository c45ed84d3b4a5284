"""One command-line override as a user types it (`+model.kernel_size=5`): its key and its value,
split in this one place for everything that reads overrides back from a record — HParams, run
names, the sweep summary — without Hydra or OmegaConf."""

from __future__ import annotations

from typing import Tuple


def key_value(override: str) -> Tuple[str, str]:
    """`+model.kernel_size=5` → ("model.kernel_size", "5"): one override as typed (a key holds no "=")."""
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value
