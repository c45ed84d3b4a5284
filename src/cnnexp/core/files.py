"""Atomic writes: every file cnnexp writes appears whole or not at all, also when killed."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path


def _file_mode() -> int:
    """The mode open() gives a new file (0o666 less the umask): mkstemp's own 0600 would set the
    files written through it apart from all the others."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


def write_atomic(path: Path, data: bytes | memoryview | str) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_WHAT_TO_DO = {
    errno.EROFS: "the file system is read-only; pick a folder you can write to (paths.output_dir=…)",
    errno.EACCES: "no permission; pick a folder you can write to (paths.output_dir=…)",
    errno.EPERM: "not permitted; pick a folder you can write to (paths.output_dir=…)",
    errno.ENOSPC: "the disk is full; free space there or write elsewhere (paths.output_dir=…)",
    errno.EDQUOT: "the disk quota is used up; free space there or write elsewhere (paths.output_dir=…)",
    errno.ENAMETOOLONG: "a name in this path is too long; choose shorter folder names or values",
    errno.EEXIST: "it already exists; pick another name",
    errno.ENOTDIR: "a part of this path is a file, not a folder; pick another path",
    errno.EISDIR: "it is a folder, not a file; pick another path",
}


def os_error_line(error: OSError, where=None) -> str:
    """An OSError as one line for `cnnexp: error:`: the path (the error's own, else `where` it
    happened — a full disk names no file), what the system said, what to do."""
    path = error.filename if error.filename is not None else where if where is not None else "?"
    what = error.strerror or type(error).__name__
    advice = _WHAT_TO_DO.get(error.errno, "check the path and try again")
    return f"{path}: {what}; {advice}"
