"""The index's own storage: embeddings and metadata in immutable segments, listed by one manifest.

Layout of an index folder::

    index.json                   manifest: format, dim, segments, next key, backend settings, build info
    segments/<name>.npy          float32 (or float16) [n, E] unit-norm entry embeddings
    segments/<name>.entries.parquet   per entry: key, video (row of the videos table), start, end, whole
    segments/<name>.parquet      per video: id, metadata (JSON text)
    backend-<generation>/        a backend's saved structure (e.g. faiss.index), when it has one
    qdrant/                      the embedded Qdrant database, for the qdrant backend
    milvus/milvus.db             the Milvus Lite database, for the milvus backend (without --option uri=...)

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

from c2kd.errors import ConfigError, DataError
from c2kd.index.filters import MetadataValue
from c2kd.io import save_npy, write_atomic, write_json
from c2kd.locking import exclusive_lock, lock_file_beside
from c2kd.reading import damaged, positive_int, read_json, read_npy, read_parquet

FORMAT = "c2kd-index"
#: 2: entries (whole clips or moment windows) per video, videos' metadata apart
VERSION = 2
#: how entry vectors are stored: float32, or float16 (half the disk and page cache; scores differ by ~1e-3)
VECTOR_DTYPES = ("float32", "float16")
MANIFEST = "index.json"
SEGMENT_DIR = "segments"
#: how a damaged index file is repaired
REBUILD = "build the index again (`c2kd index build`) or restore it from a copy"


@dataclass
class Segment:
    """One segment in memory: its videos (ids, metadata) and their entries (one vector each).

    A video's entries are contiguous and ordered by key; a whole-clip entry (``whole``) stands for the video
    itself, a moment entry for the window ``[start, end)`` seconds of it. ``vectors`` may be a read-only memory map.

    Shape:
        ids, metadata: V videos; keys, video, start, end, whole: [n] entries; vectors: [n, E]
    """

    name: str
    ids: list[str]
    metadata: list[dict[str, MetadataValue]]
    keys: np.ndarray  # int64, ascending
    video: np.ndarray  # int32 row of ``ids`` per entry, non-decreasing
    start: np.ndarray  # float32 seconds
    end: np.ndarray  # float32 seconds
    whole: np.ndarray  # bool: the entry embeds the whole clip
    vectors: np.ndarray


@dataclass(frozen=True)
class VideoEntries:
    """The entries of one video to add: whole-clip (one row, ``whole``) or moment windows.

    Shape:
        vectors [n, E], start [n], end [n] seconds
    """

    vectors: np.ndarray
    start: np.ndarray
    end: np.ndarray
    whole: bool = False

    @classmethod
    def clip(cls, vector: np.ndarray, duration: float = 0.0) -> VideoEntries:
        """One whole-clip entry (``duration`` seconds; 0 when unknown)."""
        return cls(np.asarray(vector, np.float32).reshape(1, -1), np.zeros(1, np.float32),
                   np.asarray([duration], np.float32), whole=True)

    def __len__(self) -> int:
        return len(self.vectors)


def read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.exists():
        raise DataError(f"{path} not found: {root} is not a c2kd index. Build one with `c2kd index build`.")
    manifest = read_json(path, REBUILD)
    if manifest.get("format") != FORMAT:
        raise DataError(f"{path}: not a c2kd index (format {manifest.get('format')!r})")
    if int(manifest.get("version", 0)) != VERSION:
        raise DataError(f"{path}: index format version {manifest.get('version')} is not supported (this c2kd "
                        f"reads version {VERSION}, with moment entries); rebuild it with `c2kd index build`")
    check_manifest(path, manifest)
    return manifest


def check_manifest(path: Path, manifest: Mapping[str, Any]) -> None:
    """Refuse a manifest whose fields have the wrong types (a hand edit, a bad copy): damage, named."""
    positive_int(manifest, "dim", path, REBUILD)
    for name in ("generation", "next_key"):
        value = manifest.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise damaged(path, f"its {name!r} is {value!r:.40}, not a whole number", REBUILD)
    segments, backend = manifest.get("segments"), manifest.get("backend")
    if not isinstance(segments, list) or not all(isinstance(s, dict) and isinstance(s.get("name"), str)
                                                 for s in segments):
        raise damaged(path, "its 'segments' is not a list of named segments", REBUILD)
    if not isinstance(backend, dict) or not isinstance(backend.get("name"), str) or \
            not isinstance(backend.get("options", {}), dict):
        raise damaged(path, "its 'backend' is not {\"name\": ..., \"options\": {...}}", REBUILD)
    if not isinstance(manifest.get("info", {}), dict) or manifest.get("dtype", "float32") not in VECTOR_DTYPES:
        raise damaged(path, "its 'info' or 'dtype' has the wrong type", REBUILD)


def new_manifest(dim: int, backend: str, options: Mapping[str, Any] | None, info: Mapping[str, Any] | None,
                 dtype: str = "float32") -> dict:
    if dtype not in VECTOR_DTYPES:
        raise ConfigError(f"vector storage {dtype!r} is not one of {', '.join(VECTOR_DTYPES)}")
    return {"format": FORMAT, "version": VERSION, "dim": int(dim), "dtype": dtype, "generation": 0, "next_key": 0,
            "count": 0, "entries": 0,
            "segments": [], "backend": {"name": backend, "options": dict(options or {}), "state": None},
            "info": dict(info or {})}


def write_manifest(root: Path, manifest: Mapping[str, Any]) -> None:
    write_json(root / MANIFEST, manifest)


def write_segment(root: Path, ids: Sequence[str], metadata: Sequence[Mapping[str, MetadataValue]],
                  entries: Sequence[VideoEntries], keys: np.ndarray, dtype: str = "float32") -> str:
    """Write one segment (vectors, entries, videos; each file by rename) and return its name.

    ``keys`` (ascending) are the entries' keys in order, video after video.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = f"seg-{uuid.uuid4().hex[:16]}"
    folder = root / SEGMENT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    counts = np.asarray([len(e) for e in entries], np.int64)
    n = int(counts.sum())
    if len(keys) != n:
        raise ValueError(f"{len(keys)} keys for {n} entries")
    vectors = np.concatenate([e.vectors for e in entries]) if n else np.zeros((0, 0), np.float32)
    data = np.ascontiguousarray(vectors, dtype)
    write_atomic(folder / f"{name}.npy", lambda path: save_npy(path, data, shown=folder / f"{name}.npy"))
    rows = pa.table({
        "key": pa.array(np.asarray(keys, np.int64)),
        "video": pa.array(np.repeat(np.arange(len(entries), dtype=np.int32), counts)),
        "start": pa.array(np.concatenate([e.start for e in entries]).astype(np.float32) if n else np.zeros(0, np.float32)),
        "end": pa.array(np.concatenate([e.end for e in entries]).astype(np.float32) if n else np.zeros(0, np.float32)),
        "whole": pa.array(np.repeat([e.whole for e in entries], counts).astype(bool)),
    })
    write_atomic(folder / f"{name}.entries.parquet", lambda p: pq.write_table(rows, p))
    videos = pa.table({"id": pa.array(list(ids), pa.string()),
                       "metadata": pa.array([json.dumps(dict(m), ensure_ascii=False) for m in metadata], pa.string())})
    write_atomic(folder / f"{name}.parquet", lambda p: pq.write_table(videos, p))
    return name


def read_segment(root: Path, name: str, dim: int, mmap: bool = True) -> Segment:
    """One segment of the index at ``root``, its three files checked (damage is one error naming the file)."""
    import pyarrow as pa

    folder = root / SEGMENT_DIR
    npy, rows, meta = folder / f"{name}.npy", folder / f"{name}.entries.parquet", folder / f"{name}.parquet"
    for path in (npy, rows, meta):
        if not path.exists():
            raise DataError(f"{path} is missing but listed in {root / MANIFEST}: the index is damaged; rebuild it "
                            "with `c2kd index build`")
    vectors = read_npy(npy, REBUILD, mmap=mmap, ndim=2)
    table = read_parquet(meta, REBUILD, columns=("id", "metadata"))
    entries = read_parquet(rows, REBUILD, columns=("key", "video", "start", "end", "whole"))
    try:
        column = {c: entries.column(c).to_numpy() for c in ("key", "video", "start", "end", "whole")}
        key, video = column["key"].astype(np.int64), column["video"].astype(np.int32)
        start, end, whole = column["start"].astype(np.float32), column["end"].astype(np.float32), \
            column["whole"].astype(bool)
    except (TypeError, ValueError, pa.ArrowException) as exc:  # nulls, strings where numbers belong
        raise damaged(rows, f"a column of the wrong type: {exc}", REBUILD) from None
    n = len(key)
    if vectors.shape != (n, dim):
        raise damaged(npy, f"shape {vectors.shape}, but {rows.name} lists {n} entries of {dim} dims", REBUILD)
    videos = table.to_pydict()
    ids, metadata = videos["id"], []
    for number, text in enumerate(videos["metadata"]):
        try:
            row = json.loads(text) if isinstance(text, str) else None
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict) or not isinstance(ids[number], str):
            raise damaged(meta, f"video row {number} has no id or no JSON metadata", REBUILD)
        metadata.append(row)
    if n and (video.min() < 0 or video.max() >= len(ids) or np.any(np.diff(video) < 0)):
        raise damaged(rows, f"entries point to videos outside its {len(ids)} rows", REBUILD)
    return Segment(name, ids, metadata, key, video, start, end, whole, vectors)


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
