"""Atomic file and directory writes: readers never see a half-written output, a killed run leaves the old one."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from c2kd.errors import OutputError, output_error, write_failure


@contextmanager
def output_errors(path: str | os.PathLike) -> Iterator[None]:
    """Report a failed write inside the block (disk full, read-only or forbidden folder) as one
    :class:`~c2kd.errors.OutputError` naming ``path``, the output the user chose rather than a temporary file."""
    try:
        yield
    except OutputError:
        raise
    except Exception as exc:
        code = write_failure(exc, path)
        if code is None:
            raise
        raise output_error(path, code) from exc


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    Works for files and directories. On error the temporary is removed and ``path`` is untouched; a failed
    write (disk full, read-only folder) is reported as an :class:`~c2kd.errors.OutputError` naming ``path``.
    """
    final = Path(path)
    with output_errors(final):
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
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def write_atomic(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write JSON atomically (indented, UTF-8)."""
    return write_atomic(path, lambda p: p.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8"))


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_atomic(path, lambda p: p.write_text(text, "utf-8"))
