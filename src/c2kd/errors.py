"""Exceptions raised by c2kd. Every message names the file or value at fault and how to fix it."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path


class C2KDError(Exception):
    """Base class of every error c2kd raises on purpose."""


class DataError(C2KDError, ValueError):
    """A dataset, feature store or caption file is missing, malformed or inconsistent."""


class ConfigError(C2KDError, ValueError):
    """A configuration file or option is invalid."""


class UnknownLanguageError(C2KDError, ValueError):
    """A language code that is not in the registry (`c2kd.languages`)."""


class CheckpointError(C2KDError, ValueError):
    """A checkpoint directory is missing files or does not match the model it is loaded into."""


class TrainingDivergedError(C2KDError, FloatingPointError):
    """The training loss became NaN or infinite."""


class OutputError(C2KDError, OSError):
    """An output could not be written: the disk is full, or its folder is read-only or not writable.

    Made by `output_error`: ``errno`` and ``filename`` as in any OSError; its text is the message alone.
    """

    def __str__(self) -> str:
        return str(self.strerror)


#: errno of a failed write -> what it means and how to get past it
WRITE_FAILURES = {
    errno.ENOSPC: "no space left on the device; free some space or write to a folder on another disk",
    errno.EDQUOT: "the disk quota is used up; free some space or write to a folder on another disk",
    errno.EROFS: "the file system is read-only; write to a folder on a writable disk",
    errno.EACCES: "permission denied; use a folder you may write to, or change its permissions",
    errno.EPERM: "operation not permitted; use a folder you may write to, or change its permissions",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
}


def write_failure(exc: BaseException, path: str | os.PathLike | None = None) -> int | None:
    """The errno of ``exc`` if it is a failed write (see `WRITE_FAILURES`), else None.

    Libraries that report the cause only in their message (safetensors, pyarrow) are read by its text; one that
    reports nothing useful (``torch.save``: "unexpected pos ...") counts as a full disk when ``path``'s disk has
    less than 1 MiB left.
    """
    if isinstance(exc, OSError) and exc.errno in WRITE_FAILURES:
        return exc.errno
    text = str(exc)
    for code in WRITE_FAILURES:
        if os.strerror(code) in text:
            return code
    if path is not None and isinstance(exc, RuntimeError):
        existing = next((p for p in (Path(path), *Path(path).parents) if p.exists()), None)
        if existing is not None and shutil.disk_usage(existing).free < 1 << 20:
            return errno.ENOSPC
    return None


def output_error(path: str | os.PathLike, code: int) -> OutputError:
    """The one-line error of a failed write of ``path`` (``code``: a key of `WRITE_FAILURES`)."""
    return OutputError(code, f"cannot write {path}: {WRITE_FAILURES[code]}", str(path))


class MissingDependencyError(C2KDError, ImportError):
    """An optional dependency is not installed."""


def require(module: str, extra: str, purpose: str):
    """Import an optional dependency, or fail with the pip command that installs it.

    Example:
        >>> av = require("av", "video", "decoding video files")  # doctest: +SKIP
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{purpose} needs the optional package '{module}', which is not installed. "
            f"Install it with: pip install 'c2kd[{extra}]'"
        ) from exc
