"""What the user is told when a setting is wrong before any range is checked: an unknown key with
its did-you-mean, and OmegaConf's merge errors reworded to name the key as it is typed on the
command line (`model.blocks.0.channels`, not `model.blocks[0].channels`)."""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from typing import Any, List

from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException

from cnnexp.config.schema import DATASETS, Settings
from cnnexp.core.errors import SettingsError

_TYPE_WORDS = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false", "String": "a string"}


def locate_key(tree: Any, key: str, prefix: str = "", in_list: bool = False) -> str | None:
    """OmegaConf names a bad list item's key without its path (`channels`): find the full one,
    inside a list (`model.kernel_size`, a shortcut that may be null, is not the key it means)."""
    if not key or "." in key:
        return None
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for k, v in items:
        path = f"{prefix}.{k}" if prefix else str(k)
        if str(k) == key and in_list and isinstance(tree, dict) and v is None:
            return path
        found = locate_key(v, key, path, in_list or isinstance(tree, list))
        if found:
            return found
    return None


def user_key(key: str) -> str:
    """OmegaConf's `model.blocks[0].channels` → `model.blocks.0.channels`, as typed on the command line."""
    return re.sub(r"\[(\d+)\]", r".\1", key)


def _keys_at(schema: type, path: str, data: str | None = None) -> List[str]:
    """The field names of the dataclass that `path` (dotted, list items by index) leads to;
    under `data`, those of the chosen data source (else of every one)."""
    cls = schema
    for part in filter(None, path.split(".")):
        if part.isdigit():
            continue  # a list item: List[X] was unwrapped below
        hints = typing.get_type_hints(cls)
        if part not in hints:
            return []
        cls = hints[part]
        if cls is Any and part == "model":  # the built-in networks' keys (model=own takes any)
            from cnnexp.config.schema import ModelSettings

            cls = ModelSettings
        elif cls is Any and part == "data" and data in DATASETS:
            cls = DATASETS[data]
        elif cls is Any and part == "data":  # every data source's keys: which one is chosen is not known here
            return sorted({f.name for schema in DATASETS.values() for f in dataclasses.fields(schema)})
        while typing.get_origin(cls) in (list, List, typing.Union):
            cls = next(a for a in typing.get_args(cls) if a is not type(None))
    return [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []


def unknown_key(schema: type, key: str, data: str | None = None) -> SettingsError:
    parent = key.rsplit(".", 1)[0] if "." in key else ""
    name = key.rsplit(".", 1)[-1]
    names = _keys_at(schema, parent, data)
    owners = [d for d, s in DATASETS.items()
              if data in DATASETS and parent == "data" and name in {f.name for f in dataclasses.fields(s)}]
    if owners:  # a key of another data source: the fix is the source, not a spelling
        return unknown(key, f"data={data} has no such key; it is data={' / data='.join(owners)}'s")
    guess = difflib.get_close_matches(name, names, n=1)
    if guess:
        return unknown(key, f"unknown key; did you mean {parent + '.' if parent else ''}{guess[0]}?")
    return unknown(key, f"unknown key; nearest: {nearest(name, names)}")


NEAREST = 3  # keys an unknown key's line names, so that it fits a terminal; --cfg job lists every one
ALL_KEYS = "all: --cfg job"


def nearest(name: str, names: List[str]) -> str:
    """The few keys nearest to `name` (by spelling), and where to see them all."""
    near = difflib.get_close_matches(name, names, n=NEAREST, cutoff=0.0)
    return ", ".join(near) + (f" ({ALL_KEYS})" if len(names) > len(near) else "")


def unknown(key: str, text: str) -> SettingsError:
    """A SettingsError naming `key` (its .key, as every other) whose line is short: `key: text`."""
    error = SettingsError(key, "<unknown key>", text)
    error.args = (f"{key}: {text}",)
    return error


def suggest_key(schema: type, key: str, data: str | None = None) -> None:
    """Raise a SettingsError with a did-you-mean unless the dotted `key` names a setting (of the
    data source `data`, when given)."""
    parts = key.split(".")
    for n, part in enumerate(parts):
        if part.isdigit():
            continue
        known = _keys_at(schema, ".".join(parts[:n]), data)
        if known and part not in known:
            raise unknown_key(schema, ".".join(parts[: n + 1]), data)


def describe_omegaconf_error(e: OmegaConfBaseException, schema: type | None = None,
                             typed_key: str | None = None, data: str | None = None) -> SettingsError:
    """An OmegaConf merge error as a SettingsError naming the key the user typed."""
    key = typed_key or user_key(getattr(e, "full_key", None) or "?")
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    if isinstance(e, MissingMandatoryValue):
        return SettingsError(key, "<missing>", "this setting has no value; give one (key=value)")
    if isinstance(e, ConfigKeyError) or "not in" in msg:
        return unknown_key(schema or Settings, key, data)
    value = getattr(e, "value", None)
    for word, phrase in _TYPE_WORDS.items():
        if f"converted to {word}" in msg:
            return SettingsError(key, value, f"expected {phrase}")
    if "is not Optional" in msg or "Non optional field" in msg or "Incompatible value 'None'" in msg:
        return SettingsError(key, value, "this setting cannot be null")
    return SettingsError(key, value, msg)
