"""Atomic file and directory writes: readers never see a half-written output, a killed run leaves the old one."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from c2kd.errors import StorageError

#: error numbers that mean the output does not fit: disk full, quota exceeded, file size limit
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def storage_error(path: str | os.PathLike, exc: OSError) -> StorageError:
    """The one-line error for an output that could not be written (disk full, quota, size limit, permissions)."""
    return StorageError(f"cannot write {path}: {exc.strerror or exc}. Free disk space (or raise the quota or file "
                        "size limit, or fix the folder's permissions), then run the same command again")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    Works for files and directories. On error the temporary is removed and ``path`` is untouched; a full disk
    (or quota, or file size limit) is reported as :class:`~c2kd.errors.StorageError` naming ``path``.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    target = tmp / final.name
    try:
        yield target
        if final.is_dir() and target.is_dir():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(target, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(target, final)
    except OSError as exc:
        if exc.errno in NO_SPACE_ERRNOS and not isinstance(exc, StorageError):
            raise storage_error(final, exc) from exc
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_atomic(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def save_npy(path: str | os.PathLike, array: Any, shown: str | os.PathLike | None = None) -> None:
    """``np.save`` to ``path``, synced, checking that every byte reached the file.

    NumPy buffers small arrays and can lose the failed final write of a full disk (or file size limit) without
    an error, leaving a truncated file; this raises :class:`~c2kd.errors.StorageError` instead, naming
    ``shown`` (default ``path``: give the final name when ``path`` is a temporary).
    """
    import numpy as np

    try:
        with open(path, "wb") as fh:
            np.save(fh, array)
            fh.flush()
            os.fsync(fh.fileno())
            expected, written = fh.tell(), os.fstat(fh.fileno()).st_size
    except OSError as exc:
        raise storage_error(shown or path, exc) from exc
    if written != expected:
        raise storage_error(shown or path, OSError(errno.EIO, f"only {written} of {expected} bytes were written "
                                                              "(disk full or file size limit?)"))


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write JSON atomically (indented, UTF-8)."""
    return write_atomic(path, lambda p: p.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8"))


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_atomic(path, lambda p: p.write_text(text, "utf-8"))
