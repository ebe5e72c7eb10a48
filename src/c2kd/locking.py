"""One writer at a time: an exclusive lock on an output, held for a whole command, naming its holder to others.

The lock is ``flock`` on a small file, so the kernel releases it when its process ends, even by ``kill -9``: a
lock file left behind by a dead process is simply taken over by the next writer. The file records the holder's
pid and what it is doing, for the message another writer gets.

Example:
    >>> with exclusive_lock(Path(".index.lock"), "a build of this index"):  # doctest: +SKIP
    ...     build()
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from c2kd.errors import BusyError
from c2kd.io import output_errors, storage_error


def lock_file_beside(path: str | os.PathLike) -> Path:
    """The lock file of an output folder or file: ``.<name>.lock`` beside it (it survives the output's
    replacement by rename)."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


def _holder(fd: int) -> tuple[int | None, str]:
    """(pid, activity) recorded by the process holding the lock (None, "" while it is still writing them)."""
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
        return int(data["pid"]), str(data["activity"])
    except (ValueError, KeyError, TypeError, OSError):
        return None, ""


def _acquire(lock: Path, subject: str) -> int:
    """Open and lock ``lock``; the descriptor of the locked file. Raises :class:`BusyError` when it is held, and
    :class:`~c2kd.errors.StorageError` naming ``subject`` (the output the user chose) when it cannot be made."""
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # e.g. a folder this user cannot write
            raise storage_error(subject, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, activity = _holder(fd)
            os.close(fd)
            who = f"{activity or 'another process'} is in progress" + (f", pid {pid}" if pid else "")
            raise BusyError(f"{subject}: {who}. Wait for it to finish (or stop it), then run the command again "
                            f"(lock file {lock})") from None
        try:
            current = os.stat(lock)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(os.fstat(fd), current):
            return fd
        os.close(fd)  # the previous holder removed this file while we opened it: lock the new one


@contextmanager
def exclusive_lock(lock: str | os.PathLike, activity: str, subject: str | os.PathLike | None = None
                   ) -> Iterator[None]:
    """Hold ``lock`` (created if needed) while the block runs, or fail at once if another process holds it.

    ``activity`` says what the holder does, for others' messages ("a build of this index"); ``subject`` names
    what is locked in them (default: the lock file). Not re-entrant: a second ``exclusive_lock`` on the same
    file, even in the same process, is refused.

    Raises:
        BusyError: another process (or another part of this one) holds the lock; the message gives its pid.
    """
    lock = Path(lock)
    with output_errors(subject or lock):
        lock.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(lock, str(subject or lock))
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "activity": activity}).encode("utf-8"), 0)
        yield
    finally:
        lock.unlink(missing_ok=True)  # still held: a waiting process sees the file is gone and locks a new one
        os.close(fd)
