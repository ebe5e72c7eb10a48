"""Atomic file and directory writes: readers never see a half-written output, a killed run leaves the old one."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from c2kd.errors import OutputExistsError, StorageError

#: error numbers of a failed write -> how to get past it
WRITE_FAILURES = {
    errno.ENOSPC: "Free disk space (or write to another disk)",
    errno.EDQUOT: "Free space within your disk quota (or write to another disk)",
    errno.EFBIG: "Raise the file size limit (ulimit -f)",
    errno.EROFS: "Choose an output folder on a writable disk",
    errno.EACCES: "Choose an output folder you may write to, or change its permissions",
    errno.EPERM: "Choose an output folder you may write to, or change its permissions",
    errno.ENOTDIR: "A part of the path is a file, not a folder: choose another path",
}


def write_failure(exc: BaseException) -> int | None:
    """The errno of ``exc`` if it is a failed write (a key of `WRITE_FAILURES`), else None.

    Libraries that report the cause only in their message (safetensors, pyarrow) are read by its text. Writers
    that lose the cause (``torch.save`` to a path, NumPy's ``tofile``) are given Python files instead, whose
    failures carry their errno.
    """
    if isinstance(exc, OSError) and exc.errno in WRITE_FAILURES:
        return exc.errno
    text = str(exc)
    for code in WRITE_FAILURES:
        if os.strerror(code) in text:
            return code
    return None


def storage_error(path: str | os.PathLike, exc: BaseException) -> StorageError:
    """The one-line error for an output that could not be written (disk full, quota, size limit, read-only file
    system, permissions): the path, the cause and the fix."""
    code = write_failure(exc)
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else (os.strerror(code) if code else exc)
    fix = WRITE_FAILURES[code] if code is not None else ("Free disk space (or raise the quota or file size limit, "
                                                         "or fix the folder's permissions)")
    return StorageError(f"cannot write {path}: {reason}. {fix}, then run the same command again")


@contextmanager
def output_errors(path: str | os.PathLike) -> Iterator[None]:
    """Report a failed write inside the block (see `write_failure`) as one :class:`~c2kd.errors.StorageError`
    naming ``path``, the output the user chose rather than a temporary file."""
    try:
        yield
    except (StorageError, OutputExistsError):
        raise
    except Exception as exc:
        if write_failure(exc) is None:
            raise
        raise storage_error(path, exc) from exc


#: What marks a folder as one c2kd wrote: file names (or glob patterns) of which the folder holds at least one.
Marker = str | tuple[str, ...]


def holds_marker(folder: Path, marker: Marker) -> bool:
    """Whether ``folder`` holds a file or folder named by ``marker`` (a name or glob pattern, or several)."""
    patterns = (marker,) if isinstance(marker, str) else marker
    return any(next(folder.glob(pattern), None) is not None for pattern in patterns)


def _sample(folder: Path) -> str:
    """A few names of ``folder``'s entries, for a message."""
    names = sorted(entry.name for entry in folder.iterdir())
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def check_replaceable(final: Path, marker: Marker | None, is_folder: bool = True,
                      overwrite_option: str | None = "--overwrite") -> None:
    """Refuse to replace ``final`` unless it is absent, an empty folder, or a folder holding ``marker`` (what
    the same writer wrote there before). A file is replaced by a file only; a folder never by a file.

    Raises:
        OutputExistsError: naming ``final``, what is in it and the fix (another path, or ``overwrite_option``
            where the command has one).
    """
    if not (final.exists() or final.is_symlink()):
        return
    fix = "choose another path" + (f", or add {overwrite_option} to replace it" if overwrite_option else "")
    if final.is_dir() != is_folder:
        kind = "a folder" if final.is_dir() else "a file"
        raise OutputExistsError(f"{final} is {kind} c2kd did not write here; {fix}")
    if not is_folder or not any(final.iterdir()):
        return
    if marker is None or not holds_marker(final, marker):
        raise OutputExistsError(f"{final} holds files c2kd did not write ({_sample(final)}); "
                                f"{fix}{' and everything in it' if overwrite_option else ''}")


def output_path(path: str | os.PathLike) -> Path:
    """``path`` made absolute (``.`` and ``..`` resolved by name); the root of a file system is refused."""
    absolute = Path(os.path.abspath(Path(path).expanduser()))
    if absolute == absolute.parent:
        raise OutputExistsError(f"{path} is the root folder; give a new folder for the output, e.g. {absolute / 'out'}")
    return absolute


def check_output(path: str | os.PathLike, marker: Marker | None, inputs: Iterable[str | os.PathLike | None] = (),
                 overwrite: bool = False, option: str = "--out", is_folder: bool = True,
                 overwrite_option: str | None = "--overwrite") -> Path:
    """Check an output path before any work: it may replace only what the same command wrote there (see
    :func:`check_replaceable`; any folder with ``overwrite``), and it is not one of ``inputs``, inside one, or
    a folder holding one. Returns the absolute path. Commands that add to a folder rather than replace it give
    ``overwrite_option=None``: they have no such option.

    Raises:
        OutputExistsError: one line naming ``option``, the path and the fix.
    """
    final = output_path(path)
    for given in inputs:
        if given is None:
            continue
        source = Path(os.path.abspath(Path(given).expanduser())).resolve()
        target = final.resolve()
        if target == source or target in source.parents or source in target.parents:
            where = "is" if target == source else "is inside" if source in target.parents else "holds"
            raise OutputExistsError(f"{option} {path} {where} the input {given}: writing there would replace "
                                    f"what this command reads; choose another {option}")
    if not overwrite:
        check_replaceable(final, marker, is_folder, overwrite_option)
    return final


@contextmanager
def atomic_path(path: str | os.PathLike, marker: Marker | None = None, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    Works for files and directories. A folder already at ``path`` is replaced only when it is empty or holds
    ``marker`` (what the same writer wrote there), or with ``overwrite``; anything else is refused before the
    work with :class:`~c2kd.errors.OutputExistsError`. On error the temporary is removed and ``path`` is
    untouched; a failed write (full disk, quota, file size limit, read-only or forbidden folder) is reported as
    :class:`~c2kd.errors.StorageError` naming ``path``.
    """
    final = output_path(path)
    if not overwrite and final.is_dir():
        check_replaceable(final, marker)
    with output_errors(final):
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
        target = tmp / final.name
        try:
            yield target
            swap_in(target, final, marker, overwrite)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def swap_in(new: Path, final: Path, marker: Marker | None = None, overwrite: bool = False) -> None:
    """Put a finished file or folder ``new`` at ``final`` by rename. A folder already at ``final`` is renamed
    aside first and removed last, so ``final`` is the old folder whole until the moment it is the new one.

    What is at ``final`` is replaced only as :func:`check_replaceable` allows (anything with ``overwrite``):
    c2kd never deletes what it did not write.
    """
    if not overwrite:
        check_replaceable(final, marker, new.is_dir())
    if final.is_dir() and not final.is_symlink():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(new, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        if final.is_symlink() and new.is_dir():
            final.unlink()  # the link goes, never what it points to (a rename over a file or link replaces it)
        os.replace(new, final)


def commit_shard(folder: Path, stem: str, data: Any, index_name: str, write_index: Callable[[Path], Any]) -> None:
    """One shard of an append-only store: ``folder/{stem}.npy`` holding ``data``, then the index file
    ``folder/{index_name}`` that ``write_index(path)`` writes, each by rename. Readers count a shard once its
    index is in place, so a write cut short leaves nothing they read; on failure the shard's files are removed,
    and a failed write is :class:`~c2kd.errors.StorageError` naming the file."""
    data_path, index_path = folder / f"{stem}.npy", folder / index_name
    tmp_data, tmp_index = folder / f".{stem}.npy.tmp", folder / f".{index_name}.tmp"
    writing = data_path
    try:
        save_npy(tmp_data, data, shown=data_path)
        os.replace(tmp_data, data_path)
        writing = index_path
        write_index(tmp_index)
        os.replace(tmp_index, index_path)
    except BaseException as exc:
        for path in (tmp_index, tmp_data, data_path):
            path.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise storage_error(writing, exc) from exc
        raise


def check_writable(path: str | os.PathLike, option: str) -> Path:
    """Check before long work that a file can be written at ``path`` (its folder made, a file created there and
    removed); a folder given as the file, or a folder that refuses files, is one line naming ``option``."""
    path = Path(path)
    if path.is_dir():
        raise StorageError(f"{option} {path} is a folder; give a file name, e.g. {path / 'results.json'}")
    with output_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    return path


def write_atomic(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def save_npy(path: str | os.PathLike, array: Any, shown: str | os.PathLike | None = None) -> None:
    """An ``.npy`` file at ``path``, synced, checking that every byte reached the file.

    Written through Python's file (not NumPy's, which reports a full disk as a byte count, or loses the failed
    final write of a small array), so a failure is :class:`~c2kd.errors.StorageError` with its real cause,
    naming ``shown`` (default ``path``: give the final name when ``path`` is a temporary).
    """
    import numpy as np

    array = np.ascontiguousarray(array)
    header = {"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": False, "shape": array.shape}
    try:
        with open(path, "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, header)
            fh.write(memoryview(array.reshape(-1)).cast("B"))  # a Python write: a full disk is ENOSPC, not a count
            fh.flush()
            os.fsync(fh.fileno())
            expected, written = fh.tell(), os.fstat(fh.fileno()).st_size
    except OSError as exc:
        raise storage_error(shown or path, exc) from exc
    if written != expected:
        raise storage_error(shown or path, OSError(errno.EIO, f"only {written} of {expected} bytes were written "
                                                              "(disk full or file size limit?)"))


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` through a Python file: a failed write is an ``OSError`` with its errno (to a path, torch
    reports a full disk as "unexpected pos")."""
    import torch

    try:
        with open(path, "wb") as fh:
            torch.save(obj, fh)
    except RuntimeError as exc:  # torch's writer may fail again while closing: the write's own error is the cause
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, OSError):
            raise cause from exc
        raise


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write JSON atomically (indented, UTF-8)."""
    return write_atomic(path, lambda p: p.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8"))


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_atomic(path, lambda p: p.write_text(text, "utf-8"))


def finite(value: Any) -> Any:
    """``value`` (dicts, lists, numbers) with every NaN or infinite float as None: strict JSON that every parser
    reads (a NaN score of a damaged vector is ``null``, as the HTTP service answers it)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def json_text(value: Any, indent: int | None = 2) -> str:
    """Strict JSON of a command's answer (NaN -> null, see `finite`), UTF-8 text kept as is."""
    return json.dumps(finite(value), indent=indent, ensure_ascii=False, allow_nan=False)
