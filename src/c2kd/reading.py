"""Readers of the files c2kd writes (JSON, ``.npy``, parquet): damage becomes one error naming the file and the fix.

A file cut short, a garbage header, malformed JSON, a field of the wrong type or a parquet file that is not one
all end as :class:`~c2kd.errors.DamagedFileError`: ``{path} is damaged ({what}); {fix}``, where ``fix`` is what
the caller knows will repair it (extract again, build the index again, restore from a copy).

Example:
    >>> meta = read_json(root / "store.json", "extract the videos again")  # doctest: +SKIP
    >>> dim = positive_int(meta, "dim", root / "store.json", "extract the videos again")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from c2kd.errors import DamagedFileError


def damaged(path: str | os.PathLike, what: str, fix: str) -> DamagedFileError:
    """The error for a damaged file: its path, what is wrong with it, and how to repair it."""
    return DamagedFileError(f"{path} is damaged ({what}); {fix}")


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def read_json(path: str | os.PathLike, fix: str) -> dict[str, Any]:
    """A JSON object from ``path``; a file that is not UTF-8 JSON holding an object is damaged."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise damaged(path, f"not JSON: {_short(exc)}", fix) from None
    except IsADirectoryError:
        raise damaged(path, "a folder where a file belongs", fix) from None
    if not isinstance(data, dict):
        raise damaged(path, f"a JSON {type(data).__name__} where an object belongs", fix)
    return data


def positive_int(data: Mapping[str, Any], name: str, path: str | os.PathLike, fix: str) -> int:
    """The field ``name`` of ``data`` read from ``path``, a whole number above 0 (``"dim": "abc"`` is damage)."""
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise damaged(path, f"its {name!r} is {_short(Exception(repr(value)))}, not a whole number above 0", fix)
    return value


def read_npy(path: str | os.PathLike, fix: str, mmap: bool = True, ndim: int | None = None,
             columns: int | None = None) -> Any:
    """A NumPy array from an ``.npy`` file (memory-mapped by default), checked against its header: a file cut
    short, a garbage header, another number of dimensions (``ndim``) or of columns (``columns``) is damage.

    Shape:
        -> [rows, columns] when ``ndim == 2``
    """
    import numpy as np

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except IsADirectoryError:
        raise damaged(path, "a folder where a file belongs", fix) from None
    if magic != b"\x93NUMPY":
        raise damaged(path, "no .npy header: the file is empty or garbage" if len(magic) < 6 or not magic.startswith(b"PK")
                      else "an .npz archive where an .npy array belongs", fix)
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # cut short, bad magic or header, a pickle, unreadable
        if isinstance(exc, FileNotFoundError):
            raise
        raise damaged(path, f"not a whole .npy array: {_short(exc)}", fix) from None
    if ndim is not None and array.ndim != ndim:
        raise damaged(path, f"an array of shape {array.shape}, not of {ndim} dimensions", fix)
    if columns is not None and array.shape[-1] != columns:
        raise damaged(path, f"an array of shape {array.shape}, not of {columns} columns", fix)
    return array


def read_parquet(path: str | os.PathLike, fix: str, columns: Sequence[str] = ()) -> Any:
    """A pyarrow table from a parquet file holding at least ``columns``; garbage, a file cut short or a missing
    column is damage."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise damaged(path, f"not a parquet table: {_short(exc)}", fix) from None
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise damaged(path, f"no column {missing[0]!r} (it has {', '.join(table.column_names) or 'none'})", fix)
    return table
