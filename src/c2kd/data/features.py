"""The frame-feature store: variable-length per-video features in float16 shards, memory-mapped on read.

Layout of a store directory::

    store.json                       {"format": "c2kd-features", "dim": D, "encoder": ..., "fps": ...}
    shards/<name>.npy                float16 [rows, D]
    shards/<name>.index.parquet      id, offset, length, times (list<float32>, seconds; may be empty),
                                     duration (float64 seconds, the video's length as its file states it;
                                     null when unknown; stores written before it have no such column)

A shard counts only once its index file exists, and both files are written by rename, so a killed writer
leaves no half shard: rerunning it writes the missing videos again. Writers on different machines use
different shard prefixes (``--shard i/n``) and write into one store without coordination.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from c2kd.errors import DataError
from c2kd.io import commit_shard, write_json
from c2kd.reading import damaged, positive_int, read_json, read_npy, read_parquet

FORMAT = "c2kd-features"
STORE_FILE = "store.json"
#: a dataset folder's description (see c2kd.data.dataset); its "features" names the folder of its store
DATASET_FILE = "dataset.json"
INDEX_SUFFIX = ".index.parquet"


@dataclass(frozen=True)
class _Location:
    shard: int
    offset: int
    length: int


def _check_finite(video_id: str, features: np.ndarray, where: str) -> None:
    if not np.isfinite(features).all():
        bad = int((~np.isfinite(features)).any(axis=-1).sum())
        raise DataError(
            f"{where}: features of video {video_id!r} contain NaN or inf in {bad} of {len(features)} frames. "
            "Re-extract this video, or drop it from the captions."
        )


def store_root(path: str | os.PathLike) -> Path:
    """A feature store folder, given the store itself or a dataset folder that holds one."""
    path = Path(path)
    if (path / STORE_FILE).exists():
        return path
    if (path / DATASET_FILE).exists():
        features = read_json(path / DATASET_FILE, "make the dataset again or restore it from a copy").get("features")
        return path / (features if isinstance(features, str) and features else "features")
    raise DataError(f"{path} is neither a feature store (no store.json) nor a dataset (no dataset.json); "
                    "give the folder written by `c2kd extract` or a dataset folder")


#: how a damaged store file is repaired
REPAIR = ("extract those videos again (`c2kd extract`; delete the damaged shard's .npy and .index.parquet first), "
          "or restore the store from a copy")
#: how a damaged store.json is repaired
REPAIR_STORE = "restore the store from a copy, or extract the videos again into a new folder"


def _read_shard_index(path: Path) -> dict[str, list]:
    """A shard's index file as columns, its types checked (an empty or garbage file is damage)."""
    import pyarrow as pa

    table = read_parquet(path, REPAIR, columns=("id", "offset", "length", "times"))
    kinds = {"id": pa.types.is_string, "offset": pa.types.is_integer, "length": pa.types.is_integer,
             "times": pa.types.is_list, "duration": pa.types.is_floating}
    for name, is_kind in kinds.items():
        if name in table.column_names and not is_kind(table.schema.field(name).type):
            raise damaged(path, f"its column {name!r} holds {table.schema.field(name).type}", REPAIR)
    data = table.to_pydict()
    if any(o is None or n is None or o < 0 or n < 0 for o, n in zip(data["offset"], data["length"])):
        raise damaged(path, "a negative or missing offset or length", REPAIR)
    if any(v is None for v in data["id"]):
        raise damaged(path, "a missing video id", REPAIR)
    data["times"] = [t or [] for t in data["times"]]
    data.setdefault("duration", [None] * len(data["id"]))  # a store written before durations were recorded
    return data


def read_store_meta(path: Path) -> dict:
    """A store's ``store.json``, checked: a c2kd store's, with a whole ``dim`` (damage is one error naming it)."""
    meta = read_json(path, REPAIR_STORE)
    if meta.get("format") != FORMAT:
        raise DataError(f"{path}: not a c2kd feature store (format {meta.get('format')!r})")
    positive_int(meta, "dim", path, REPAIR_STORE)
    return meta


class FeatureStore:
    """Read-only view of a feature store.

    Shape:
        store[video_id] -> np.ndarray [T, D] float16 (a memory-mapped view); times(video_id) -> [T] seconds;
        duration(video_id) -> seconds or None
    """

    def __init__(self, root: str | os.PathLike, problems: list[str] | None = None):
        """Open the store at ``root``. With a ``problems`` list, a damaged shard is described there and left
        out instead of raised (``c2kd data check`` reports every damaged file at once)."""
        self.root = Path(root)
        meta_path = self.root / STORE_FILE
        if not meta_path.exists():
            raise DataError(
                f"{meta_path} not found: {self.root} is not a feature store. Create one with "
                "`c2kd extract` or `c2kd data synthetic`, or point to the right folder."
            )
        self.meta = read_store_meta(meta_path)
        self.dim = int(self.meta["dim"])
        self._shards: list[Path] = []
        self._rows: list[int] = []  # per shard: the rows its index places videos in
        self._arrays: dict[int, np.ndarray] = {}
        self._locations: dict[str, _Location] = {}
        self._times: dict[str, np.ndarray] = {}
        self._durations: dict[str, float] = {}
        self._load_indexes(problems)

    def _load_indexes(self, problems: list[str] | None) -> None:
        shard_dir = self.root / "shards"
        for index_path in sorted(shard_dir.glob(f"*{INDEX_SUFFIX}")) if shard_dir.exists() else []:
            data_path = index_path.with_name(index_path.name[: -len(INDEX_SUFFIX)] + ".npy")
            try:
                if not data_path.exists():
                    raise DataError(f"{index_path}: its data file {data_path.name} is missing; delete the index to "
                                    "redo it")
                table = _read_shard_index(index_path)
            except DataError as exc:
                if problems is None:
                    raise
                problems.append(str(exc))
                continue
            shard = len(self._shards)
            self._shards.append(data_path)
            self._rows.append(max((o + n for o, n in zip(table["offset"], table["length"])), default=0))
            for vid, off, length, times, duration in zip(table["id"], table["offset"], table["length"],
                                                         table["times"], table["duration"]):
                if vid in self._locations:
                    raise DataError(
                        f"{index_path}: video {vid!r} is stored twice (also in "
                        f"{self._shards[self._locations[vid].shard].name}); delete one of the shards"
                    )
                self._locations[vid] = _Location(shard, int(off), int(length))
                if times:
                    self._times[vid] = np.asarray(times, dtype=np.float32)
                if duration is not None and np.isfinite(duration) and duration > 0:
                    self._durations[vid] = float(duration)

    def _array(self, shard: int) -> np.ndarray:
        arr = self._arrays.get(shard)
        if arr is None:
            path = self._shards[shard]
            arr = read_npy(path, REPAIR, ndim=2, columns=self.dim)
            rows = self._rows[shard]
            if len(arr) < rows:
                raise damaged(path, f"{len(arr)} rows, but its index {path.stem}{INDEX_SUFFIX} places videos up to "
                                    f"row {rows}", REPAIR)
            self._arrays[shard] = arr
        return arr

    def damaged_shards(self) -> list[str]:
        """One line per shard whose data file cannot be read whole (cut short, garbage, another shape)."""
        problems = []
        for shard in range(len(self._shards)):
            try:
                self._array(shard)
            except DataError as exc:
                problems.append(str(exc))
        return problems

    @property
    def ids(self) -> list[str]:
        return list(self._locations)

    def __len__(self) -> int:
        return len(self._locations)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._locations

    def __iter__(self) -> Iterator[str]:
        return iter(self._locations)

    def __getitem__(self, video_id: str) -> np.ndarray:
        loc = self._locations.get(video_id)
        if loc is None:
            raise KeyError(f"video {video_id!r} has no features in {self.root}")
        return self._array(loc.shard)[loc.offset: loc.offset + loc.length]

    def times(self, video_id: str) -> np.ndarray:
        """Timestamps (seconds) of a video's feature rows; ``arange(T) / fps`` when none were stored."""
        if video_id in self._times:
            return self._times[video_id]
        fps = float(self.meta.get("fps") or 1.0)
        return np.arange(self._locations[video_id].length, dtype=np.float32) / fps

    def duration(self, video_id: str) -> float | None:
        """The video's length in seconds as its file stated it at extraction; None when the store does not know
        it (written before durations were recorded, or features not made from a video file): callers then estimate
        it from the rows (:class:`c2kd.search.windows.Timeline`)."""
        if video_id not in self._locations:
            raise KeyError(f"video {video_id!r} has no features in {self.root}")
        return self._durations.get(video_id)

    def length(self, video_id: str) -> float | None:
        """The video's length in seconds: :meth:`duration` when recorded, else where its last row ends (its last
        time plus one frame interval at the store's fps); None for a video stored without times."""
        recorded = self.duration(video_id)
        if recorded is not None:
            return recorded
        times = self.times(video_id)
        return float(times[-1]) + 1.0 / float(self.meta.get("fps") or 1.0) if len(times) else None

    def validate(self, ids: Iterable[str] | None = None) -> None:
        """Raise :class:`DataError` for any NaN/inf feature or empty video (scans the data once)."""
        for vid in self.ids if ids is None else ids:
            feats = self[vid]
            if len(feats) == 0:
                raise DataError(f"{self.root}: video {vid!r} has zero frames; re-extract it or drop it")
            _check_finite(vid, feats, str(self.root))


class FeatureStoreWriter:
    """Append videos to a (new or existing) store; each ``flush`` commits one shard atomically.

    Example:
        >>> with FeatureStoreWriter(tmp_path / "store", dim=4) as w:  # doctest: +SKIP
        ...     w.add("video1", np.zeros((3, 4), np.float32), times=[0.0, 1.0, 2.0])
    """

    def __init__(self, root: str | os.PathLike, dim: int, encoder: str | None = None, fps: float | None = None,
                 prefix: str = "part", flush_every: int = 256, extra: dict | None = None):
        self.root = Path(root)
        self.dim = int(dim)
        self.prefix = prefix
        self.flush_every = flush_every
        meta_path = self.root / STORE_FILE
        if meta_path.exists():
            meta = read_json(meta_path, REPAIR_STORE)
            if positive_int(meta, "dim", meta_path, REPAIR_STORE) != self.dim:
                raise DataError(
                    f"{meta_path}: store holds {meta['dim']}-d features, cannot add {self.dim}-d ones; "
                    "use another --out folder for another encoder"
                )
            if encoder and meta.get("encoder") and meta["encoder"] != encoder:
                raise DataError(f"{meta_path}: store was made with {meta['encoder']!r}, not {encoder!r}")
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            write_json(meta_path, {"format": FORMAT, "version": 1, "dim": self.dim, "dtype": "float16",
                                   "encoder": encoder, "fps": fps, **(extra or {})})
        (self.root / "shards").mkdir(exist_ok=True)
        self._existing = set(FeatureStore(self.root).ids)
        self._pending: list[tuple[str, np.ndarray, np.ndarray | None, float | None]] = []

    def __contains__(self, video_id: str) -> bool:
        return video_id in self._existing or any(p[0] == video_id for p in self._pending)

    def add(self, video_id: str, features: np.ndarray, times: Sequence[float] | np.ndarray | None = None,
            duration: float | None = None) -> None:
        """Queue one video's features [T, D] (rows at ``times`` seconds) and its length ``duration`` in seconds
        (None: unknown); flushed every ``flush_every`` videos."""
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise DataError(f"video {video_id!r}: features of shape {features.shape}, expected [T, {self.dim}]")
        if len(features) == 0:
            raise DataError(f"video {video_id!r}: no frames to store")
        _check_finite(video_id, features, str(self.root))
        if video_id in self:
            raise DataError(f"video {video_id!r} is already in {self.root}; skip it or write to a new store")
        if times is not None and len(times) != len(features):
            raise DataError(f"video {video_id!r}: {len(times)} timestamps for {len(features)} frames")
        if duration is not None and not (np.isfinite(duration) and duration > 0):
            raise DataError(f"video {video_id!r}: a length of {duration} seconds; give a positive number or None")
        self._pending.append((video_id, features.astype(np.float16),
                              None if times is None else np.asarray(times, np.float32),
                              None if duration is None else float(duration)))
        if len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Commit queued videos as one shard: data file first, index file last (both by rename)."""
        if not self._pending:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        name = f"{self.prefix}-{uuid.uuid4().hex[:12]}"
        offsets = np.cumsum([0] + [len(p[1]) for p in self._pending[:-1]])
        table = pa.table({
            "id": [p[0] for p in self._pending],
            "offset": pa.array(offsets, pa.int64()),
            "length": pa.array([len(p[1]) for p in self._pending], pa.int32()),
            "times": pa.array([[] if p[2] is None else p[2].tolist() for p in self._pending],
                              pa.list_(pa.float32())),
            "duration": pa.array([p[3] for p in self._pending], pa.float64()),
        })
        commit_shard(self.root / "shards", name, np.concatenate([p[1] for p in self._pending]),
                     f"{name}{INDEX_SUFFIX}", lambda path: pq.write_table(table, path))
        self._existing.update(p[0] for p in self._pending)
        self._pending.clear()

    def remove_orphans(self) -> list[Path]:
        """Delete this prefix's files that were never committed, and return them: temporary files, and data files
        without their index (left by a writer killed, or out of disk space, while writing them).

        Call it only while no other writer uses this prefix (``c2kd extract`` holds a lock per shard).
        """
        shard_dir = self.root / "shards"
        orphans = list(shard_dir.glob(f".{self.prefix}-*.tmp"))
        orphans += [p for p in shard_dir.glob(f"{self.prefix}-*.npy")
                    if not p.with_name(p.name[: -len(".npy")] + INDEX_SUFFIX).exists()]
        for path in orphans:
            path.unlink(missing_ok=True)
        return orphans

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> FeatureStoreWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Commit what was finished even when the caller failed: finished videos are never lost.
        self.flush()
