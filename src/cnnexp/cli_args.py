"""key=value arguments for the small entry points (eval, predict), checked like the main config:
an unknown key or a value of the wrong type is one message naming it."""

from __future__ import annotations

import sys
from typing import List, Type, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cnnexp.errors import SettingsError
from cnnexp.settings import describe_omegaconf_error

T = TypeVar("T")


def parse(schema: Type[T], argv: List[str] | None = None) -> T:
    args = sys.argv[1:] if argv is None else argv
    bad = [a for a in args if "=" not in a]
    if bad:
        raise SettingsError(bad[0], "", "arguments are key=value, e.g. run=outputs/2026-11-25/10-31-02")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.from_dotlist(args))
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise describe_omegaconf_error(e, schema) from None
