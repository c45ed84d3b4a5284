"""Atomic writes: every file cnnexp writes appears whole or not at all, also when killed; a write
the system refuses (read-only, full, over the file-size limit …) is one WriteError, whose str()
is the line `cnnexp: error:` prints."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from cnnexp.core.errors import UserError


def _file_mode() -> int:
    """The mode open() gives a new file (0o666 less the umask): mkstemp's own 0600 would set the
    files written through it apart from all the others."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


class WriteError(OSError, UserError):
    """A file the system would not let cnnexp write: a UserError (entry points print it in one
    line, exit 2), and still an OSError with the errno, for code that handles a write it can do
    without. Its filename is the file meant, not the temporary one."""

    elsewhere = "paths.output_dir=…"  # how the user writes elsewhere; an entry point may name its own key

    def __str__(self) -> str:
        return os_error_line(self, elsewhere=self.elsewhere)


def write_atomic(path: Path, data: bytes | memoryview | str) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename over `path`. On any
    failure the temporary file goes and `path` is as it was; an OSError becomes a WriteError."""
    path, tmp = Path(path), None
    try:
        if path.exists() and not (path.is_file() or path.is_dir()):  # the rename would replace /dev/null, a FIFO …
            raise WriteError(errno.ESPIPE, "not a plain file", str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, WriteError):
            raise written_error(e, path) from e
        raise


def written_error(error: OSError, path: Path) -> WriteError:
    """`error` as a WriteError naming what was meant: a folder on the way that could not be made,
    else `path` (the temporary file's name, or none — a full disk names no file — says nothing)."""
    named = error.filename if error.filename is not None and ".part" not in str(error.filename) else path
    return WriteError(error.errno, error.strerror or type(error).__name__, str(named))


_WHAT_TO_DO = {
    errno.EROFS: "the file system is read-only; pick a folder you can write to ({elsewhere})",
    errno.EACCES: "no permission; pick a folder you can write to ({elsewhere})",
    errno.EPERM: "not permitted; pick a folder you can write to ({elsewhere})",
    errno.ENOSPC: "the disk is full; free space there or write elsewhere ({elsewhere})",
    errno.EDQUOT: "the disk quota is used up; free space there or write elsewhere ({elsewhere})",
    errno.EFBIG: "the file is larger than this process may write (ulimit -f) or the file system holds; "
                 "raise the limit or write elsewhere ({elsewhere})",
    errno.ESPIPE: "it is a pipe, a socket or a device; name a plain file ({elsewhere})",
    errno.EIO: "the disk reported an input/output error; check the disk, or write elsewhere ({elsewhere})",
    errno.ENOENT: "a folder on the way is missing (removed while writing?); check the path",
    errno.ELOOP: "a symbolic link on the way loops; check the path",
    errno.ENAMETOOLONG: "a name in this path is too long; choose shorter folder names or values",
    errno.EEXIST: "it already exists; pick another name",
    errno.ENOTDIR: "a part of this path is a file, not a folder; pick another path",
    errno.EISDIR: "it is a folder, not a file; pick another path",
}


def os_error_line(error: OSError, where=None, elsewhere: str = "paths.output_dir=…") -> str:
    """An OSError as one line for `cnnexp: error:`: the path (the error's own, else `where` it
    happened — a full disk names no file), what the system said, what to do — `elsewhere`: how
    this command writes somewhere else. A newline in a path is shown as \\n: one line stays one."""
    path = error.filename if error.filename is not None else where if where is not None else "?"
    what = error.strerror or type(error).__name__
    advice = _WHAT_TO_DO.get(error.errno, "check the path and try again").format(elsewhere=elsewhere)
    return f"{path}: {what}; {advice}".replace("\n", "\\n")
