"""A folder's lock, held for as long as its object lives: `FolderLock` for one process alone (a run,
a resume, a grid sweep), `WorkerLock` for the workers of a search, which share it. Both are a
`flock` on the folder's `.cnnexp.lock`, so the kernel drops it when the process dies, however it
dies: a `running` record whose lock nobody holds is a killed run (`holder`). The last holder out
removes the file; a lock taken on a file that was removed meanwhile is taken again on the new one,
so an exclusive holder and another holder can never both hold the folder.

`one_at_a_time` is the search workers' turn: one of them at a time counts, asks, checks, starts.
Its file (`.search.lock`) is removed by the last worker out, the same way: a turn taken on a file
removed meanwhile is taken again on the new one.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from contextlib import contextmanager
from pathlib import Path

from cnnexp.core.errors import RunError
from cnnexp.core.files import os_error_line

LOCK = ".cnnexp.lock"
TURN = ".search.lock"  # a search's workers take turns through it


class FolderLock:
    """An exclusive lock on a folder (one process at a time)."""

    mode = fcntl.LOCK_EX
    tries = 1  # a shared lock waits out a worker that holds it alone for an instant (`alone`)

    def __init__(self, folder: Path):
        self.path, self.pid = Path(folder) / LOCK, os.getpid()
        while True:
            try:
                # never through a link (it could truncate a file elsewhere), never blocked on a pipe
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
            except OSError as e:  # read-only, full, not a folder: nothing can be written there
                if e.errno == errno.ELOOP:
                    raise RunError(f"{self.path}: a link, not the folder's lock file; a folder's lock is a file "
                                   "of its own — remove the link") from None
                raise RunError(os_error_line(e)) from None
            if not stat.S_ISREG(os.fstat(self.fd).st_mode):
                os.close(self.fd)
                self.fd = None
                raise RunError(f"{self.path}: not a plain file, so not the folder's lock; remove it")
            for attempt in range(self.tries):
                try:
                    fcntl.flock(self.fd, self.mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if attempt + 1 < self.tries:
                        time.sleep(0.1)
            else:
                pid = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(self.fd)
                self.fd = None
                raise RunError(self.refused(folder, pid)) from None
            try:
                if os.fstat(self.fd).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(self.fd)  # its last holder released and removed it as we opened it: take the new one
        self.stamp()

    def refused(self, folder: Path, pid: str) -> str:
        return (f"{folder}: another cnnexp process (pid {pid}) is using this folder; "
                "wait for it to finish or stop it, then resume")

    def stamp(self) -> None:
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)

    def last_out(self) -> bool:
        """Whether this holder is the last (exclusive: always); if so it now holds the lock alone."""
        return True

    def release(self) -> None:
        if getattr(self, "fd", None) is None:
            return
        if os.getpid() == self.pid and self.last_out():  # a forked child closes its copy; only a holder removes
            try:
                self.path.unlink(missing_ok=True)
            except OSError:
                pass  # a read-only folder keeps it; the lock itself goes with the descriptor
        try:
            os.close(self.fd)
        except OSError:
            pass
        self.fd = None

    __del__ = release


class WorkerLock(FolderLock):
    """The folder's lock shared by a search's workers: `-m resume=SWEEP` joins a running search as
    one more worker, and is refused on a folder a grid sweep (or a run) holds alone."""

    mode = fcntl.LOCK_SH
    tries = 20

    def refused(self, folder: Path, pid: str) -> str:
        return (f"{folder}: another cnnexp process (pid {pid}) runs this sweep, and it is not a search that workers "
                "can join; wait for it to finish or stop it, then resume")

    def stamp(self) -> None:  # the pid of the latest worker, whole, over the earlier one's
        os.pwrite(self.fd, f"{os.getpid():<31}".encode(), 0)

    def last_out(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def alone(self) -> bool:
        """No other worker holds the lock (asked while `one_at_a_time`)."""
        alone = self.last_out()
        fcntl.flock(self.fd, fcntl.LOCK_SH)  # back to shared (a refused upgrade gives the lock up)
        return alone


def holder(folder: Path) -> str | None:
    """The pid (as text) of a live process holding `folder`'s lock — alone, or as one of a search's
    workers, who share it (the pid is then the latest worker's) — or None where none does. Probed
    with a non-blocking exclusive lock, dropped at once: it is had only where nobody holds the
    lock, so it never stands in the way of a worker asking whether it is the last (`alone`)."""
    try:  # a link or a pipe in its place is nobody's lock (and would hang a plain open)
        fd = os.open(Path(folder) / LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
    finally:
        os.close(fd)  # releases the probe's lock, if it got one


@contextmanager
def one_at_a_time(folder: Path):
    """The workers of a search take turns (an exclusive lock on a second file in the sweep folder,
    which all of them share), e.g. to count, ask, check and start, or to end."""
    path = Path(folder) / TURN
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the last worker out removed it while we waited: take the turn on the new one
    try:
        yield
    finally:
        os.close(fd)


def drop_turn(folder: Path) -> None:
    """The last worker out, in its turn: no `.search.lock` left behind (a worker that waits on the
    removed file takes its turn on a new one)."""
    try:
        (Path(folder) / TURN).unlink(missing_ok=True)
    except OSError:
        pass  # a read-only folder keeps it; the turn itself is the flock


@contextmanager
def last_out(lock: FolderLock | None):
    """Whether the holder of `lock` is the last out of its folder: a lone holder always is; of a
    search's workers, the last to end. Workers ask in turn, and one that is not the last lets go of
    the folder before the next asks, so that of two ending at once exactly one is; the turn is held
    while the last one's body runs (the sweep's summary), so a worker joining meanwhile starts after;
    the last one then removes the turn's file."""
    if not isinstance(lock, WorkerLock) or lock.fd is None:
        yield True
        return
    with one_at_a_time(lock.path.parent):
        if lock.alone():
            try:
                yield True
            finally:
                drop_turn(lock.path.parent)
        else:
            lock.release()
            yield False
