"""The index's own storage: embeddings and metadata in immutable segments, listed by one manifest.

Layout of an index folder::

    index.json                   manifest: format, dim, segments, next key, backend settings, build info
    segments/<name>.npy          float32 [n, E] unit-norm video embeddings
    segments/<name>.parquet      id, key, metadata (JSON text)
    backend-<generation>/        a backend's saved structure (e.g. faiss.index), when it has one
    qdrant/                      the embedded Qdrant database, for the qdrant backend

Every change writes new files first and switches the manifest last (one rename), so a reader or a killed
writer never sees half an update; unreferenced files left by a killed writer are deleted by the next writer.
Adding writes one new segment; removing rewrites only the segments that held the removed videos. Writers
take the lock file ``.<folder name>.lock`` beside the folder (:func:`writer_lock`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from c2kd.errors import DataError
from c2kd.index.filters import MetadataValue
from c2kd.io import save_npy, write_atomic, write_json
from c2kd.locking import exclusive_lock, lock_file_beside

FORMAT = "c2kd-index"
MANIFEST = "index.json"
SEGMENT_DIR = "segments"


@dataclass
class Segment:
    """One segment in memory. ``vectors`` may be a read-only memory map."""

    name: str
    ids: list[str]
    keys: np.ndarray
    metadata: list[dict[str, MetadataValue]]
    vectors: np.ndarray


def read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.exists():
        raise DataError(f"{path} not found: {root} is not a c2kd index. Build one with `c2kd index build`.")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise DataError(f"{path}: not a c2kd index (format {manifest.get('format')!r})")
    if int(manifest.get("version", 0)) != 1:
        raise DataError(f"{path}: index format version {manifest.get('version')} is not supported; rebuild it")
    return manifest


def new_manifest(dim: int, backend: str, options: Mapping[str, Any] | None, info: Mapping[str, Any] | None) -> dict:
    return {"format": FORMAT, "version": 1, "dim": int(dim), "generation": 0, "next_key": 0, "count": 0,
            "segments": [], "backend": {"name": backend, "options": dict(options or {}), "state": None},
            "info": dict(info or {})}


def write_manifest(root: Path, manifest: Mapping[str, Any]) -> None:
    write_json(root / MANIFEST, manifest)


def write_segment(root: Path, ids: Sequence[str], keys: np.ndarray, vectors: np.ndarray,
                  metadata: Sequence[Mapping[str, MetadataValue]]) -> str:
    """Write one segment's two files (each by rename) and return its name."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = f"seg-{uuid.uuid4().hex[:16]}"
    folder = root / SEGMENT_DIR
    folder.mkdir(parents=True, exist_ok=True)

    data = np.ascontiguousarray(vectors, np.float32)
    write_atomic(folder / f"{name}.npy", lambda path: save_npy(path, data, shown=folder / f"{name}.npy"))
    table = pa.table({"id": pa.array(list(ids), pa.string()), "key": pa.array(np.asarray(keys, np.int64)),
                      "metadata": pa.array([json.dumps(dict(m), ensure_ascii=False) for m in metadata], pa.string())})
    write_atomic(folder / f"{name}.parquet", lambda p: pq.write_table(table, p))
    return name


def read_segment(root: Path, name: str, dim: int, mmap: bool = True) -> Segment:
    import pyarrow.parquet as pq

    folder = root / SEGMENT_DIR
    npy, meta = folder / f"{name}.npy", folder / f"{name}.parquet"
    for path in (npy, meta):
        if not path.exists():
            raise DataError(f"{path} is missing but listed in {root / MANIFEST}: the index is damaged; rebuild it "
                            "with `c2kd index build`")
    vectors = np.load(npy, mmap_mode="r" if mmap else None)
    table = pq.read_table(meta).to_pydict()
    if vectors.ndim != 2 or vectors.shape != (len(table["id"]), dim):
        raise DataError(f"{npy}: shape {vectors.shape} does not match {len(table['id'])} ids x {dim} dims")
    return Segment(name, table["id"], np.asarray(table["key"], np.int64),
                   [json.loads(m) for m in table["metadata"]], vectors)


def garbage_collect(root: Path, manifest: Mapping[str, Any]) -> None:
    """Delete segment files and backend generations the manifest no longer lists (left by old versions)."""
    import shutil

    live = {s["name"] for s in manifest["segments"]}
    for path in (root / SEGMENT_DIR).glob("seg-*") if (root / SEGMENT_DIR).exists() else []:
        if path.name.split(".")[0] not in live:
            path.unlink(missing_ok=True)
    state = manifest["backend"].get("state")
    for path in root.glob("backend-*"):
        if path.name != state:
            shutil.rmtree(path, ignore_errors=True)


def writer_lock(root: Path, activity: str = "an update of this index") -> AbstractContextManager[None]:
    """Exclusive lock on an index folder across processes (two writers would lose each other's changes).

    The lock file lies beside the folder, so a build that replaces the folder holds it throughout; a writer
    that finds it held is refused with the holder's pid (:class:`~c2kd.errors.BusyError`).
    """
    return exclusive_lock(lock_file_beside(root), activity, subject=root)
