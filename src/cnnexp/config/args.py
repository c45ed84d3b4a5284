"""key=value arguments for the small entry points (eval, predict, bench), checked like the main
config: an unknown key or a value of the wrong type is one message naming it. `--help` on any
entry point prints its docstring (usage and an example) and the keys its schema takes."""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from typing import List, Optional, Type, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cnnexp.core.errors import SettingsError
from cnnexp.config.messages import describe_omegaconf_error

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


def exit_on_help(doc: str, argv: List[str] | None = None, schema: Optional[type] = None) -> None:
    """`-h`/`--help`: the module's docstring and, for a schema, each key with its default and the
    comment beside it in the source; exit 0."""
    args = sys.argv[1:] if argv is None else argv
    if not {"-h", "--help"} & set(args):
        return
    text = doc.strip()
    if schema is not None:
        text += "\n\nkeys (key=value):\n" + "\n".join(_keys(schema))
    print(text)
    raise SystemExit(0)


def _keys(schema: type, prefix: str = "") -> List[str]:
    comments = dict(re.findall(r"^\s+(\w+):[^#\n]*#\s*(.+)$", inspect.getsource(schema), re.M))
    lines = []
    for f in dataclasses.fields(schema):
        if dataclasses.is_dataclass(f.type) or f.default_factory is not dataclasses.MISSING:
            lines += _keys(f.default_factory().__class__, f"{prefix}{f.name}.")
            continue
        default = "" if f.default is None else str(f.default).lower() if isinstance(f.default, bool) else f.default
        lines.append((f"  {prefix}{f.name}={default}".ljust(28) + comments.get(f.name, "")).rstrip())
    return lines
