"""Exceptions raised by c2kd. Every message names the file or value at fault and how to fix it."""

from __future__ import annotations

from typing import Any


class C2KDError(Exception):
    """Base class of every error c2kd raises on purpose."""


class DataError(C2KDError, ValueError):
    """A dataset, feature store or caption file is missing, malformed or inconsistent."""


class DamagedFileError(DataError):
    """A file c2kd wrote that can no longer be read (cut short, garbage, malformed, wrong types): made by
    :func:`c2kd.reading.damaged`, naming the file and how to repair it."""


class ConfigError(C2KDError, ValueError):
    """A configuration file or option is invalid."""


class UnknownLanguageError(C2KDError, ValueError):
    """A language code that is not in the registry (`c2kd.languages`)."""


class CheckpointError(C2KDError, ValueError):
    """A checkpoint directory is missing files or does not match the model it is loaded into."""


class BusyError(C2KDError, RuntimeError):
    """An output (index, feature store shard) is being written by another process."""


class UnavailableError(C2KDError, RuntimeError):
    """Something a running process loaded is gone (an index folder removed under ``c2kd serve``): a fault of the
    server's side, not of the request (HTTP 503)."""


class StorageError(C2KDError, OSError):
    """An output could not be written: the disk is full, a quota or file size limit was hit, the file system is
    read-only, no permission. Made by :func:`c2kd.io.storage_error`."""


class OutputExistsError(C2KDError, FileExistsError):
    """An output path holds something c2kd did not write there (a user's folder, a dataset, a checkpoint of
    another kind), or overlaps an input of the same command: nothing is replaced. Made by
    :func:`c2kd.io.check_output`."""


class TrainingDivergedError(C2KDError, FloatingPointError):
    """The training loss became NaN or infinite."""


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


def validation_problems(exc: Any, prefix: str = "") -> str:
    """A pydantic ``ValidationError`` as one line: ``section.field: message; ...`` (``prefix`` before each path)."""
    return "; ".join(f"{prefix}{'.'.join(str(x) for x in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
