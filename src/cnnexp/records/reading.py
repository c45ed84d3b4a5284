"""Reading a file of a folder someone handed over — a run's or a sweep's record — as data: only a
plain file of that folder, never through a link that leads out of it, never a device or a pipe
(which would hang the reader), never more than a record can hold. Each refusal is one line
(`RecordError`). What the files are called is records/folder.py's.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Optional

from cnnexp.core.errors import RunError

TEXT_LIMIT = 16 * 2**20  # a record's text file: far beyond any real one (10 000 epochs of metrics.csv: ~3 MB)


class RecordError(RunError):
    """A record file that cannot be read as one: its str() names the file and what is wrong."""


def record_file(folder: Path, path: Path) -> Optional[Path]:
    """`path` (a record of `folder`) where it really is, if it can be read as a record: a plain file
    inside the folder. None where there is nothing; RecordError for a link that leads out of the
    folder (a folder handed over is data: it never makes us read elsewhere), a link to nowhere, a
    folder where a file goes, a device or a pipe (which would hang a reader)."""
    path = Path(path)
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RecordError(f"{path}: cannot be read ({e.strerror})") from None
    real = path
    if stat.S_ISLNK(info.st_mode) or path.resolve() != path.absolute():
        try:
            real = path.resolve(strict=True)
        except FileNotFoundError:
            raise RecordError(f"{path}: a link to {os.readlink(path) if path.is_symlink() else '?'}, "
                              "which does not exist") from None
        except (OSError, RuntimeError):
            raise RecordError(f"{path}: a loop of links; not followed") from None
        root = Path(folder).resolve()
        if real != root and root not in real.parents:
            raise RecordError(f"{path}: a link to {real}, outside {folder}; a record is a file of its own "
                              "folder, and a link out of it is not followed")
        info = real.stat()
    if stat.S_ISDIR(info.st_mode):
        raise RecordError(f"{path}: a folder where a file belongs")
    if not stat.S_ISREG(info.st_mode):
        raise RecordError(f"{path}: not a plain file (a device, a pipe or a socket), so not read")
    return real


def read_record_text(folder: Path, path: Path, limit: int = TEXT_LIMIT) -> Optional[str]:
    """A record's text (None where there is none), read only if `record_file` allows it, and only
    up to `limit` bytes: a huge file is one line, not all of memory."""
    real = record_file(folder, path)
    if real is None:
        return None
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as e:
        raise RecordError(f"{path}: cannot be read ({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # swapped since record_file looked
            raise RecordError(f"{path}: not a plain file, so not read")
        if info.st_size > limit:
            raise RecordError(f"{path}: {info.st_size / 2**20:.0f} MB, far more than a record holds "
                              f"(at most {limit // 2**20} MB); not read")
        data = f.read(limit + 1)
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise RecordError(f"{path}: not text (not UTF-8)") from None


APPENDED = ("train.log",)  # what a continued run appends to in place (the rest is replaced whole)


def parse_json(path: Path, text: str) -> Any:
    """A record's JSON text, or RecordError naming the file (RecursionError: nesting no record has)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise RecordError(f"{path}: not readable JSON ({str(e)[:100]})") from None


def links_out(folder: Path, depth: int = 3) -> list:
    """The links in `folder` (walked `depth` levels down, never through a link) that lead out of it:
    a run or a sweep continued in a folder someone handed over would append its log, events or
    checkpoints through them to a file elsewhere."""
    root, found = Path(folder).resolve(), []

    def walk(where: Path, level: int) -> None:
        try:
            entries = list(os.scandir(where))
        except OSError:
            return
        for entry in entries:
            path = Path(entry.path)
            if entry.is_symlink():
                real = path.resolve()
                if real != root and root not in real.parents:
                    found.append(path)
            elif entry.name in APPENDED and entry.is_file(follow_symlinks=False) and \
                    entry.stat(follow_symlinks=False).st_nlink > 1:  # a hard link: the same file elsewhere too
                found.append(path)
            elif entry.is_dir(follow_symlinks=False) and level < depth:
                walk(path, level + 1)

    walk(root, 1)
    return sorted(found)


def refuse_links_out(folder: Path, key: str, depth: int = 3) -> None:
    """`key`=folder (resume=…) is continued only if nothing in it leads elsewhere: RecordError otherwise."""
    found = links_out(folder, depth)
    if found:
        what = f"a link to {found[0].resolve()}, outside {folder}" if found[0].is_symlink() else \
            "a hard link, the same file as one elsewhere"
        raise RecordError(f"{found[0]}: {what}; a run continued there would write through it — replace the link "
                          "with a copy of the file it stands for")


def plain_yaml(text: str, path: Path) -> None:
    """RecordError where a record's YAML holds an alias (`*name`): cnnexp writes none, and a few
    hundred bytes of nested aliases expand past any memory ("billion laughs"). Reads YAML's events
    only, which expand nothing; a syntax error is left to the reader that parses it."""
    import yaml

    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise RecordError(f"{path}: holds a YAML alias (*{event.anchor}), which no record cnnexp writes has "
                                  "(aliases can expand past any memory); not read")
    except yaml.YAMLError:
        return

