"""key=value arguments for the small entry points (eval, predict, export, bench, dashboard), checked
like the main config: an unknown key or a value of the wrong type is one message naming it. A key
typed as text (a folder, a file, a pattern, a name) takes everything after the first `=` exactly
as typed — no YAML reading of ` #` as a comment, `: ` as a mapping, quotes, `${…}` or a newline —
and never empty. `--help` on any entry point prints its docstring (usage and an example) and the
keys its schema takes."""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import typing
from typing import Dict, List, Optional, Type, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cnnexp.core.errors import SettingsError
from cnnexp.config.messages import describe_omegaconf_error
from cnnexp.config.schema import check_path

T = TypeVar("T")


def parse(schema: Type[T], argv: List[str] | None = None) -> T:
    args = sys.argv[1:] if argv is None else argv
    from cnnexp.config.own_network import typed

    for arg in [a for a in args if a.partition("=")[0].lstrip("+") == "model._target_"]:
        typed(arg.partition("=")[2])  # a model=own run's class, confirmed by the user (config.own_network)
        args = [a for a in args if a != arg]
    bad = [a for a in args if "=" not in a]
    if bad:
        raise SettingsError(bad[0], "", "arguments are key=value, e.g. run=outputs/2026-11-25/10-31-02")
    keys = [a.split("=", 1)[0] for a in args]
    twice = next((k for k in keys if keys.count(k) > 1), None)
    if twice:  # the last would win without a word
        raise SettingsError(twice, "…", f"given {keys.count(twice)} times; give it once")
    texts = text_keys(schema)
    as_typed: Dict[str, str] = {}
    for arg in args:
        key, _, value = arg.partition("=")
        if key in texts:
            check_path(key, value)
            as_typed[key] = value  # the last one given wins, as OmegaConf's merge does for the others
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema),
                                 OmegaConf.from_dotlist([a for a in args if a.partition("=")[0] not in texts]))
        parsed = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise describe_omegaconf_error(e, schema) from None
    for key, value in as_typed.items():
        *path, name = key.split(".")
        owner = parsed
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, name, value)  # after OmegaConf: `${…}` in a folder's name is not resolved
    return parsed


def text_keys(schema: type, prefix: str = "") -> set:
    """The dotted keys of `schema` (nested dataclasses included) whose type is str or Optional[str]."""
    keys = set()
    for name, kind in typing.get_type_hints(schema).items():
        if dataclasses.is_dataclass(kind):
            keys |= text_keys(kind, f"{prefix}{name}.")
        elif kind is str or kind == Optional[str]:
            keys.add(prefix + name)
    return keys


def folder_argument(text: str, key: str = "FOLDER"):
    """A folder given as a bare argument (check, summary, dashboard, compare), as typed; an empty
    one is refused like any empty path (`''` would be read as the current folder)."""
    from pathlib import Path

    from cnnexp.config.schema import check_path

    try:
        check_path(key, text, fix="name the folder")
    except SettingsError as e:
        from cnnexp.core.errors import fail

        fail(e)
    return Path(text).expanduser()


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
        key = f"  {prefix}{f.name}={default}"
        lines.append(((key.ljust(28) if len(key) < 28 else key + "  ") + comments.get(f.name, "")).rstrip())
    return lines
