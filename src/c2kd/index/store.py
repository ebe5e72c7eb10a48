"""``VideoIndex``: video embeddings + metadata on disk, searched through a pluggable backend.

Example:
    >>> index = VideoIndex.create(tmp_path / "idx", dim=4)  # doctest: +SKIP
    >>> index.add(["v1", "v2"], vectors, [{"split": "test"}, {"split": "train"}])  # doctest: +SKIP
    >>> index.search(query_vectors, k=5, filters={"split": "test"})[0][0].video_id  # doctest: +SKIP
    'v1'
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from c2kd.errors import ConfigError, DataError
from c2kd.index.base import BACKENDS, Backend, Hit
from c2kd.index.blocks import RowBlocks, RowReader, read_rows
from c2kd.index.exact import grouped_topk, topk_inner_product
from c2kd.index.filters import MetadataFilter, MetadataValue, normalize_filter
from c2kd.index.options import Option, check_options
from c2kd.index.segments import (
    MANIFEST,
    SEGMENT_DIR,
    Segment,
    VideoEntries,
    garbage_collect,
    new_manifest,
    read_manifest,
    read_segment,
    write_manifest,
    write_segment,
    writer_lock,
)
from c2kd.index.spans import LENGTH_PRIOR, Moment, rank_moments

#: with a metadata filter that leaves at most this many videos, approximate backends are bypassed for an
#: exact scan of those videos (exact and faster than probing an index for a few matches)
EXACT_SUBSET_LIMIT = 20_000
#: an approximate backend is first asked for this many entries per video wanted (at least MIN_CANDIDATES),
#: then for four times as many until enough distinct videos are found; the candidates are re-scored exactly
CANDIDATES_PER_HIT = 300
MIN_CANDIDATES = 100
#: of a video's candidates, only its best few by the backend's approximate score are re-scored exactly (the
#: video ranks by its best entry; the rest of its windows near them are re-scored for its moments)
RESCORED_PER_VIDEO = 4
#: the videos of the best candidates, this many per video wanted, have their windows around the candidates
#: re-scored exactly before the top k are chosen (a video's best window is often not its best candidate)
RERANKED_PER_HIT = 2
#: search settings of the index itself (``-o name=value`` with the backend's): not passed to the backend
INDEX_OPTIONS = (Option("candidates_per_hit", int, "entries an approximate backend is asked for per video wanted "
                        f"(default {CANDIDATES_PER_HIT})", low=1),)
#: through an approximate backend, a hit video's moments come from all its windows when it has at most this
#: many (about 5 minutes at the default windows; one contiguous read), else from those near its candidates
MOMENT_RESCORE_LIMIT = 512


def backend_class(name: str) -> type[Backend]:
    """The backend class of this name (``exact``, ``faiss``, ``qdrant``, ``milvus`` or another registered in
    :data:`~c2kd.index.base.BACKENDS`); its optional library is not imported."""
    return BACKENDS.get(name)


def make_backend(name: str, dim: int, options: Mapping[str, Any] | None = None) -> Backend:
    """Instantiate a backend by name, its options checked (:meth:`Backend.check_options`)."""
    return backend_class(name)(dim, options)


def split_options(backend: str, options: Mapping[str, Any],
                  searching: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """``-o`` settings as (the index's own, the backend's), each checked: an unknown name, a value out of range
    or (``searching``) a setting of the built structure is a :class:`ConfigError` naming what exists."""
    cls = backend_class(backend)
    own_names = {o.name for o in INDEX_OPTIONS}
    known = sorted(own_names | {o.name for o in cls.OPTIONS})
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"backend {backend!r} has no option {unknown[0]!r}; its options: {', '.join(known)}")
    built = sorted(o.name for o in cls.OPTIONS if not o.at_search and o.name in options) if searching else []
    if built:
        live = ", ".join(sorted(o.name for o in (*INDEX_OPTIONS, *cls.OPTIONS) if o.at_search))
        raise ConfigError(f"backend {backend!r} option {built[0]} is part of the built index: set it with `c2kd "
                          f"index build -o {built[0]}=...`; a search can change {live}")
    own = check_options({k: v for k, v in options.items() if k in own_names}, INDEX_OPTIONS, "the index")
    return own, cls.check_options({k: v for k, v in options.items() if k not in own_names})


def declared_options() -> dict[str, tuple[Option, ...]]:
    """Every ``-o`` setting there is: the index's own (``index``, for approximate backends) and each backend's."""
    return {"index": INDEX_OPTIONS, **{name: cls.OPTIONS for name, cls in BACKENDS.items()}}


def check_search_options(root: str | os.PathLike, options: Mapping[str, Any]) -> None:
    """Refuse bad ``-o`` settings for searching the index at ``root`` before anything heavy is loaded (the
    backend's range checks see the options it was built with, e.g. ``nprobe`` against its ``nlist``)."""
    spec = read_manifest(Path(root))["backend"]
    _, backend_options = split_options(spec["name"], options, searching=True)
    backend_class(spec["name"]).check_options({**spec.get("options", {}), **backend_options})


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``["nlist=1024", "kind=hnsw"]`` -> ``{"nlist": 1024, "kind": "hnsw"}`` (numbers parsed)."""
    from c2kd.options import key_value, scalar

    pairs = (key_value(item, "backend option", "name=value, e.g. nprobe=32") for item in items)
    return {key: scalar(value) for key, value in pairs}


class _ReadWriteLock:
    """Many concurrent searches, or one writer."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._readers:
                self._cond.wait()
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@dataclass
class _View:
    """An immutable snapshot of the index: its videos (ids, metadata) and their entries (keys ascending).

    A video's entries are consecutive: video ``v`` owns entries ``first[v]`` to ``first[v] + count[v]``.
    """

    segments: list[Segment]
    ids: list[str] = field(init=False)
    metadata: list[dict[str, MetadataValue]] = field(init=False)
    position: dict[str, int] = field(init=False)
    keys: np.ndarray = field(init=False)  # [n] int64
    entry_video: np.ndarray = field(init=False)  # [n] int64 video position of each entry
    start: np.ndarray = field(init=False)  # [n] float32 seconds
    end: np.ndarray = field(init=False)  # [n] float32 seconds
    whole: np.ndarray = field(init=False)  # [n] bool
    first: np.ndarray = field(init=False)  # [V] int64
    count: np.ndarray = field(init=False)  # [V] int64
    _starts: np.ndarray = field(init=False)  # first entry of each segment
    _readers: list[RowReader] = field(init=False, default_factory=list)  # pread instead of the maps, when set
    _inverted: dict[str, dict[str, np.ndarray]] = field(init=False, default_factory=dict)
    _fields: dict[str, dict[str, int]] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        segs = self.segments
        self.ids = [i for s in segs for i in s.ids]
        self.metadata = [m for s in segs for m in s.metadata]
        self.position = {vid: i for i, vid in enumerate(self.ids)}
        video_offsets = np.cumsum([0] + [len(s.ids) for s in segs])

        def joined(name: str, dtype: Any) -> np.ndarray:
            parts = [np.asarray(getattr(s, name), dtype) for s in segs]
            return np.concatenate(parts) if parts else np.zeros(0, dtype)

        self.keys, self.start = joined("keys", np.int64), joined("start", np.float32)
        self.end, self.whole = joined("end", np.float32), joined("whole", bool)
        parts = [s.video.astype(np.int64) + off for s, off in zip(segs, video_offsets)]
        self.entry_video = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        self.count = np.bincount(self.entry_video, minlength=len(self.ids)).astype(np.int64)
        self.first = np.concatenate([[0], np.cumsum(self.count)[:-1]]).astype(np.int64)
        self._starts = np.cumsum([0] + [len(s.keys) for s in segs])

    @property
    def entries(self) -> int:
        return len(self.keys)

    def positions_of(self, keys: np.ndarray) -> np.ndarray:
        """Entry positions of the keys that are in the index (in the keys' order). Shape: [n] -> [n' <= n]."""
        n = len(self.keys)
        if n and self.keys[0] == 0 and self.keys[-1] == n - 1:  # never removed from: a key is its position
            return keys[(keys >= 0) & (keys < n)]
        pos = np.searchsorted(self.keys, keys)
        return pos[(pos < n) & (self.keys[np.minimum(pos, n - 1)] == keys)]

    def read_rows_directly(self, root: Path) -> None:
        """Read scattered rows with ``pread`` instead of the memory maps (for approximate backends, which
        re-score a few candidates per query): the vectors then stay in the OS page cache, not in the process."""
        self._readers = [RowReader(root / SEGMENT_DIR / f"{seg.name}.npy") for seg in self.segments]

    def close(self) -> None:
        for reader in self._readers:
            reader.close()
        self._readers = []

    def all_vectors(self, dim: int) -> RowBlocks:
        """Every entry's vector, as one matrix over the segments' memory maps (nothing copied). Shape: [n, E]."""
        return RowBlocks([s.vectors for s in self.segments], dim)

    def vectors(self, positions: np.ndarray) -> np.ndarray:
        """Vectors of some entry positions, as stored (float32 or float16). Shape: [n] -> [n, E]."""
        positions = np.asarray(positions, np.int64)
        if self._readers:
            return read_rows(self._readers, self._starts, positions)
        seg = np.searchsorted(self._starts, positions, side="right") - 1
        out = [self.segments[s].vectors[positions[seg == s] - self._starts[s]] for s in np.unique(seg)]
        order = np.argsort(np.argsort(seg, kind="stable"), kind="stable")
        return np.concatenate(out)[order] if out else np.zeros((0, 0), np.float32)

    def video_entries(self, videos: np.ndarray) -> np.ndarray:
        """Entry positions of some video positions, video after video. Shape: [V'] -> [n']."""
        videos = np.asarray(videos, np.int64)
        if len(videos) == 0:
            return np.zeros(0, np.int64)
        counts = self.count[videos]
        offsets = np.repeat(self.first[videos] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        return np.arange(int(counts.sum()), dtype=np.int64) + offsets

    def field_counts(self) -> dict[str, dict[str, int]]:
        """Metadata field -> {value as text: number of videos} (list values count once per item); built once."""
        if self._fields is None:
            counts: dict[str, dict[str, int]] = {}
            for meta in self.metadata:
                for fld, value in meta.items():
                    table = counts.setdefault(fld, {})
                    for item in value if isinstance(value, list) else [value]:
                        if item is not None:
                            table[str(item)] = table.get(str(item), 0) + 1
            self._fields = counts
        return self._fields

    def payloads(self) -> list[dict[str, MetadataValue]]:
        """One payload per entry: its video's metadata and ``video_id`` (what native-filter backends filter on)."""
        per_video = [{**m, "video_id": vid} for vid, m in zip(self.ids, self.metadata)]
        return [per_video[v] for v in self.entry_video]

    def allowed_videos(self, filters: Mapping[str, list]) -> np.ndarray:
        """Positions of the videos that pass a normalised filter (an inverted index per field, built lazily)."""
        result: np.ndarray | None = None
        for fld, accepted in filters.items():
            table = self._inverted.get(fld)
            if table is None:
                groups: dict[str, list[int]] = {}
                for pos, meta in enumerate(self.metadata):
                    value = meta.get(fld)
                    for item in value if isinstance(value, list) else [value]:
                        if item is not None:
                            groups.setdefault(str(item), []).append(pos)
                table = {v: np.asarray(p, np.int64) for v, p in groups.items()}
                self._inverted[fld] = table
            hits = [table[str(a)] for a in accepted if str(a) in table]
            here = np.unique(np.concatenate(hits)) if hits else np.zeros(0, np.int64)
            result = here if result is None else np.intersect1d(result, here, assume_unique=True)
        return np.zeros(0, np.int64) if result is None else result


class VideoIndex:
    """A persistent, updatable index of video embeddings with metadata filters.

    Safe for many concurrent searches in one process; changes take an exclusive lock, in-process and
    across processes. Open it once per process (a server loads it at start).
    """

    def __init__(self, root: Path, manifest: dict[str, Any], view: _View, backend: Backend,
                 options: Mapping[str, Any] | None = None):
        self.root = root
        self._manifest = manifest
        self._view = view
        self.backend = backend
        self._options = dict(options or {})
        self._lock = _ReadWriteLock()
        self._writer: int | None = None  # the thread holding the writer lock through ``writing``
        self._stamp = _stamp(root)  # of index.json as read: another process's commit changes it

    # -- opening and creating -----------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, dim: int, backend: str = "exact", options: Mapping[str, Any] | None = None,
               info: Mapping[str, Any] | None = None, dtype: str = "float32") -> VideoIndex:
        """Start an empty index folder (which must not hold an index yet); ``dtype`` is how vectors are stored."""
        root = Path(root)
        if (root / MANIFEST).exists():
            raise DataError(f"{root} already holds an index; open it, or delete it to start over")
        options = split_options(backend, options or {})[1]  # the index's own settings are for searching
        root.mkdir(parents=True, exist_ok=True)
        write_manifest(root, new_manifest(dim, backend, options, info, dtype))
        return cls.open(root)

    @classmethod
    def open(cls, root: str | os.PathLike, options: Mapping[str, Any] | None = None) -> VideoIndex:
        """Load an index; ``options`` override backend settings for this process (e.g. ``nprobe``), and
        ``candidates_per_hit`` sets how many entries an approximate backend is asked for per video wanted."""
        root = Path(root)
        manifest = read_manifest(root)
        dim = int(manifest["dim"])
        view = _View([read_segment(root, s["name"], dim) for s in manifest["segments"]])
        spec = manifest["backend"]
        backend_options = split_options(spec["name"], options or {}, searching=True)[1]
        backend = make_backend(spec["name"], dim, {**spec.get("options", {}), **backend_options})
        if not backend.exact_scores:  # candidates are read a few rows at a time, not mapped into the process
            view.read_rows_directly(root)
        # a live database keeps the folder named after its backend (qdrant/, milvus/)
        state_dir = root / (spec.get("state") or (backend.name if backend.state == "live" else "backend-none"))

        backend.load_state(state_dir, view.keys, lambda: view.all_vectors(dim), view.payloads)
        if backend.state == "live" and spec.get("state") != state_dir.name:
            spec["state"] = state_dir.name
        return cls(root, manifest, view, backend, options)

    @classmethod
    def build(cls, root: str | Path, ids: Sequence[str], vectors: np.ndarray,
              metadata: Sequence[Mapping[str, MetadataValue]] | None = None, backend: str = "exact",
              options: Mapping[str, Any] | None = None, info: Mapping[str, Any] | None = None) -> VideoIndex:
        """Write a complete index in one step, replacing any index at ``root`` atomically."""
        from c2kd.io import atomic_path

        with writer_lock(Path(root), "a build of this index"), atomic_path(root, MANIFEST) as tmp:
            index = cls.create(tmp, dim=np.asarray(vectors).shape[-1], backend=backend, options=options, info=info)
            index.add(ids, vectors, metadata)
            index.close()
        return cls.open(root)

    @contextmanager
    def writing(self, activity: str = "an update of this index") -> Iterator[None]:
        """Hold the index's writer lock across several changes; other processes' writers are refused meanwhile.

        On taking the lock, changes another process committed since this index was read are loaded first, so
        they are neither lost nor their files deleted. ``activity`` is what other writers are told is going on.

        Raises:
            BusyError: another process is changing (or building) this index.
        """
        if self._writer == threading.get_ident():
            yield
            return
        with writer_lock(self.root, activity):
            self._writer = threading.get_ident()
            try:
                self._reload_if_changed()
                yield
            finally:
                self._writer = None

    def refresh(self) -> bool:
        """Load the changes another process committed since this index was read (e.g. ``c2kd index add``
        while ``c2kd serve`` runs); True when something was reloaded. One ``stat`` when nothing changed."""
        stamp = _stamp(self.root)
        if stamp == self._stamp or self._writer is not None:
            return False
        self._stamp = stamp
        before = int(self._manifest["generation"])
        self._reload_if_changed()
        return int(self._manifest["generation"]) != before

    def _reload_if_changed(self) -> None:
        if int(read_manifest(self.root)["generation"]) == int(self._manifest["generation"]):
            return
        with self._lock.write():
            self.backend.close()
            self._view.close()
            fresh = VideoIndex.open(self.root, self._options)
            self._manifest, self._view, self.backend = fresh._manifest, fresh._view, fresh.backend

    def save(self) -> None:
        """Persist the backend's current structure (done by every change; needed after a backend rebuild)."""
        with self.writing(), self._lock.write():
            self._commit(self._manifest, self._view)

    def close(self) -> None:
        self.backend.close()
        self._view.close()

    def __enter__(self) -> VideoIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- properties ---------------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self._manifest["dim"])

    @property
    def info(self) -> dict[str, Any]:
        """Build information (checkpoint, feature store, ...), as given at creation."""
        return dict(self._manifest.get("info", {}))

    @property
    def ids(self) -> list[str]:
        return list(self._view.ids)

    @property
    def dtype(self) -> str:
        """How entry vectors are stored: float32 or float16."""
        return str(self._manifest.get("dtype", "float32"))

    @property
    def entries(self) -> int:
        """Number of entries (whole clips and moment windows) over all videos."""
        return self._view.entries

    def __len__(self) -> int:
        """Number of videos."""
        return len(self._view.ids)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._view.position

    def metadata(self, video_id: str) -> dict[str, MetadataValue]:
        pos = self._view.position.get(video_id)
        if pos is None:
            raise KeyError(f"video {video_id!r} is not in the index {self.root}")
        return dict(self._view.metadata[pos])

    def has_moments(self, video_id: str) -> bool:
        """Whether a video is indexed as moment windows (not as one whole clip)."""
        self.metadata(video_id)
        view = self._view
        return not bool(view.whole[view.first[view.position[video_id]]])

    def entries_of(self, video_id: str) -> VideoEntries:
        """The stored entries of one video: their spans and vectors (one whole-clip entry, or its windows)."""
        self.metadata(video_id)
        view = self._view
        rows = view.video_entries(np.asarray([view.position[video_id]]))
        return VideoEntries(np.asarray(view.vectors(rows), np.float32), view.start[rows].copy(),
                            view.end[rows].copy(), bool(view.whole[rows].all()))

    def vector(self, video_id: str) -> np.ndarray:
        """The stored embedding of a video indexed as one whole clip. Shape: [E] float32."""
        entries = self.entries_of(video_id)
        if not entries.whole:
            raise DataError(f"video {video_id!r} is indexed as {len(entries)} moments, not one vector; "
                            "use entries_of()")
        return entries.vectors[0]

    def fields(self) -> dict[str, dict[str, int]]:
        """The metadata fields of the indexed videos, each with its values and how many videos have each.

        Example:
            >>> index.fields()["split"]  # doctest: +SKIP
            {'test': 24, 'train': 40}
        """
        return {name: dict(values) for name, values in self._view.field_counts().items()}

    def field_names(self) -> set[str]:
        """Names of the metadata fields some indexed video has (what a filter can test)."""
        return set(self._view.field_counts())

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.root), "videos": len(self), "entries": self.entries,
                "moment_videos": int((~self._view.whole[self._view.first[self._view.count > 0]]).sum()),
                "dim": self.dim, "dtype": self.dtype, "segments": len(self._view.segments),
                **self.backend.describe(), "info": self.info}

    # -- changes ------------------------------------------------------------------------------------------
    def add(self, ids: Sequence[str], vectors: np.ndarray, metadata: Sequence[Mapping[str, MetadataValue]] | None = None,
            replace: bool = False) -> int:
        """Add videos as one whole-clip entry each (embeddings are L2-normalised). Existing ids are an error
        unless ``replace``.

        Shape:
            ids: N strings, vectors: [N, E], metadata: N dicts (optional)
        """
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(ids), self.dim):
            raise DataError(f"{self.root}: got vectors of shape {vectors.shape} for {len(ids)} ids; "
                            f"this index holds {self.dim}-d embeddings")
        metadata = [dict(m) for m in metadata] if metadata is not None else [{} for _ in ids]
        entries = [VideoEntries.clip(v, _duration(m)) for v, m in zip(vectors, metadata)]
        return self.add_entries(ids, entries, metadata, replace)

    def add_entries(self, ids: Sequence[str], entries: Sequence[VideoEntries],
                    metadata: Sequence[Mapping[str, MetadataValue]] | None = None, replace: bool = False) -> int:
        """Add videos with their entries: a whole clip each, or its moment windows (vectors L2-normalised).

        Existing ids are an error unless ``replace``.

        Shape:
            ids: N strings, entries: N (vectors [n_i, E], start [n_i], end [n_i]), metadata: N dicts
        """
        ids = [str(i) for i in ids]
        metadata = [dict(m) for m in metadata] if metadata is not None else [{} for _ in ids]
        if len(metadata) != len(ids) or len(entries) != len(ids):
            raise DataError(f"{len(metadata)} metadata rows and {len(entries)} entry sets for {len(ids)} ids")
        if len(set(ids)) != len(ids):
            raise DataError("the same video id is given twice in one add; ids must be unique")
        clean = [_checked(vid, e, self.dim, self.root) for vid, e in zip(ids, entries)]
        if not ids:
            return 0
        with self.writing():
            existing = [i for i in ids if i in self._view.position]
            if existing and not replace:
                raise DataError(f"{len(existing)} video(s) already in {self.root} (e.g. {existing[0]!r}); "
                                "use `c2kd index add --replace` to update them, or remove them first")
            with self._lock.write():
                if existing:
                    self._remove_locked(existing)
                manifest = self._manifest
                first_key = int(manifest["next_key"])
                keys = np.arange(first_key, first_key + sum(len(e) for e in clean), dtype=np.int64)
                name = write_segment(self.root, ids, metadata, clean, keys, self.dtype)
                segment = read_segment(self.root, name, self.dim)
                per_video = [{**m, "video_id": v} for v, m in zip(ids, metadata)]
                self.backend.add(segment.keys, segment.vectors, [per_video[v] for v in segment.video])
                manifest = {**manifest, "next_key": first_key + len(segment.keys),
                            "segments": [*manifest["segments"], {"name": name, "count": len(ids),
                                                                 "entries": len(segment.keys)}]}
                self._commit(manifest, _View([*self._view.segments, segment]))
        return len(ids)

    def remove(self, ids: Sequence[str], missing_ok: bool = False) -> int:
        """Remove videos by id; unknown ids are an error unless ``missing_ok``. Returns how many were removed."""
        ids = [str(i) for i in ids]
        with self.writing():
            unknown = [i for i in ids if i not in self._view.position]
            if unknown and not missing_ok:
                raise DataError(f"{len(unknown)} id(s) are not in {self.root} (e.g. {unknown[0]!r}); "
                                "`c2kd index info` shows the index, pass --missing-ok to ignore them")
            known = sorted({i for i in ids if i in self._view.position})
            if known:
                with self._lock.write():
                    self._remove_locked(known)
        return len(known)

    def _remove_locked(self, ids: Sequence[str]) -> None:
        view, drop = self._view, set(ids)
        segments, listed = [], []
        for seg in view.segments:
            keep = [i for i, vid in enumerate(seg.ids) if vid not in drop]
            if len(keep) == len(seg.ids):
                segments.append(seg)
                listed.append({"name": seg.name, "count": len(seg.ids), "entries": len(seg.keys)})
            elif keep:
                rows = np.flatnonzero(np.isin(seg.video, keep))
                name = _rewrite_segment(self.root, seg, keep, rows, self.dtype)
                segments.append(read_segment(self.root, name, self.dim))
                listed.append({"name": name, "count": len(keep), "entries": len(rows)})
        gone = view.video_entries(np.asarray([view.position[i] for i in ids], np.int64))
        self.backend.remove(view.keys[gone])
        self._commit({**self._manifest, "segments": listed}, _View(segments))

    def _commit(self, manifest: dict[str, Any], view: _View) -> None:
        """Save the backend's structure (if it has one), then switch the manifest, then drop stale files."""
        manifest = {**manifest, "generation": int(manifest["generation"]) + 1, "count": len(view.ids),
                    "entries": view.entries}
        backend_spec = dict(manifest["backend"])
        if self.backend.state == "snapshot":
            backend_spec["state"] = f"backend-{manifest['generation']}"
            self.backend.save(self.root / backend_spec["state"])
        backend_spec["options"] = {**backend_spec.get("options", {}), **_persistable(self.backend.options)}
        manifest["backend"] = backend_spec
        write_manifest(self.root, manifest)
        if not self.backend.exact_scores:
            view.read_rows_directly(self.root)
        self._view.close()
        self._manifest, self._view = manifest, view
        garbage_collect(self.root, manifest)

    # -- search -------------------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int = 10, filters: MetadataFilter | None = None, group: bool = True,
               moments: int = 3, iou: float = 0.5, length_prior: float = LENGTH_PRIOR) -> list[list[Hit]]:
        """Top-k videos for each query embedding, best first, among the videos passing ``filters``.

        A video scores as its best entry (the maximum over its moment windows, or its one whole-clip entry),
        and each hit carries up to ``moments`` of its best windows after temporal non-maximum suppression at
        ``iou``, ranked by cosine plus ``length_prior * log2(seconds)`` (see
        :data:`~c2kd.index.spans.LENGTH_PRIOR`). With ``group=False`` the hits are the top-k entries
        themselves, moments of any video (a video may then appear several times, each hit with its one moment).

        Shape:
            queries: [Q, E] or [E] (L2-normalised by the caller) -> Q lists of at most k hits
        """
        queries = np.asarray(queries, np.float32)
        queries = queries[None] if queries.ndim == 1 else queries
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise DataError(f"query embeddings of shape {queries.shape}; the index {self.root} holds {self.dim}-d")
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        norm = normalize_filter(filters)
        with self._lock.read():
            per_hit = int(self._options.get("candidates_per_hit", CANDIDATES_PER_HIT))
            search = _Search(self._view, self.backend, norm, moments, iou, length_prior, per_hit)
            return [search.videos(q, k) if group else search.moments(q, k) for q in queries]


@dataclass
class _Search:
    """One search over a snapshot: the exact scan, the exact scan of a filtered subset, or an approximate
    backend asked for enough candidates (re-scored exactly from the stored vectors)."""

    view: _View
    backend: Backend
    filters: dict[str, list]
    moments_per_hit: int
    iou: float
    length_prior: float
    per_hit: int
    subset: np.ndarray | None = field(init=False, default=None)  # entry positions passing the filter
    videos_allowed: np.ndarray | None = field(init=False, default=None)
    exact: bool = field(init=False)

    def __post_init__(self) -> None:
        if self.filters:
            self.videos_allowed = self.view.allowed_videos(self.filters)
            self.subset = self.view.video_entries(self.videos_allowed)
        small = self.subset is not None and len(self.subset) <= EXACT_SUBSET_LIMIT
        self.exact = self.backend.exact_scores or small

    @property
    def size(self) -> int:
        return self.view.entries if self.subset is None else len(self.subset)

    def score(self, positions: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Exact scores of some entries. Shape: [n] positions, [E] -> [n] float32."""
        if len(positions) == 0:
            return np.zeros(0, np.float32)
        # einsum, not BLAS: a few thousand rows take well under a millisecond on one thread, and waking the BLAS
        # threads would take the cores from an approximate backend's own threads (2x slower queries measured)
        return np.einsum("ij,j->i", np.asarray(self.view.vectors(positions), np.float32), query).astype(np.float32)

    def candidates(self, query: np.ndarray, n: int, per_video: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray, bool, np.ndarray]:
        """About the top-n entries (positions, exact scores), best first; whether fewer than n exist; and all
        the positions found. With ``per_video``, only each video's best ``per_video`` of them by the backend's
        approximate score are re-scored and returned."""
        view = self.view
        if self.exact and self.subset is not None:
            scores, rows = topk_inner_product(view.vectors(self.subset), query[None], n)
            return self.subset[rows[0]], scores[0], n >= len(self.subset), self.subset[rows[0]]
        if self.subset is None:
            _, keys = self.backend.search(query[None], n)
        elif self.backend.native_filters:
            _, keys = self.backend.search(query[None], n, filters=self.filters)
        else:
            _, keys = self.backend.search(query[None], n, allowed=view.keys[self.subset])
        keys = keys[0][keys[0] >= 0]
        exhausted = len(keys) < n
        found = view.positions_of(keys)
        pos = found if per_video is None else found[_first_per_group(view.entry_video[found], per_video)]
        scores = self.score(pos, query)
        order = np.lexsort((pos, -scores))
        return pos[order], scores[order], exhausted, found

    def moments(self, query: np.ndarray, k: int) -> list[Hit]:
        """The top-k entries across the collection, each as a hit of its video with one moment."""
        if self.size == 0:
            return []
        pos, scores, _, _ = self.candidates(query, min(self.size, k if self.exact else k * self.per_hit))
        view = self.view
        hits = []
        for rank, (p, score) in enumerate(zip(pos[:k], scores[:k]), start=1):
            v = int(view.entry_video[p])
            moment = () if view.whole[p] else (Moment(float(view.start[p]), float(view.end[p]), float(score),
                                                      rank=1),)
            hits.append(Hit(view.ids[v], float(score), rank, dict(view.metadata[v]), moment))
        return hits

    def videos(self, query: np.ndarray, k: int) -> list[Hit]:
        """The top-k videos, each scored by its best entry, with its best moments."""
        view = self.view
        if self.size == 0:
            return []
        pool: np.ndarray | None = None  # an approximate backend's candidate entries
        scanned: tuple[np.ndarray | None, np.ndarray] | None = None  # (entry positions or all, scores) of a scan
        found = self.backend.search_groups(query[None], k, view.first) if self.subset is None else None
        if found is not None:
            video_scores, videos, scanned = found[0][0], found[1][0], (None, found[2][0])
        elif self.exact:
            assert self.subset is not None and self.videos_allowed is not None
            starts = np.concatenate([[0], np.cumsum(view.count[self.videos_allowed])[:-1]])
            s, groups, rows = grouped_topk(view.vectors(self.subset), query[None], starts, k)
            video_scores, videos, scanned = s[0], self.videos_allowed[groups[0]], (self.subset, rows[0])
        else:
            n = min(self.size, max(k * self.per_hit, MIN_CANDIDATES))
            while True:
                pos, scores, exhausted, pool = self.candidates(query, n, RESCORED_PER_VIDEO)
                owner = view.entry_video[pos]
                _, first = np.unique(owner, return_index=True)  # best entry of each video (sorted best first)
                if len(first) >= k or exhausted or n >= self.size:
                    break
                n = min(self.size, n * 4)
            first = np.sort(first)[:k * RERANKED_PER_HIT]
            videos, video_scores = owner[first], scores[first]
            pool = np.sort(pool)  # a video's entries are consecutive: its candidates become one slice
        ranked = []
        for v, score in zip(videos.tolist(), video_scores.tolist()):
            windows = self._windows_of(v, query, scanned, pool)
            best = score if windows is None else max(score, float(windows[1].max()))
            ranked.append((best, v, windows))
        if pool is not None:  # re-scored around their candidates: order the videos by their exact best
            ranked = sorted(ranked, key=lambda item: (-item[0], item[1]))[:k]
        return [Hit(view.ids[v], score, rank, dict(view.metadata[v]), self._moments(windows))
                for rank, (score, v, windows) in enumerate(ranked, start=1)]

    def _windows_of(self, video: int, query: np.ndarray, scanned: tuple[np.ndarray | None, np.ndarray] | None,
                    pool: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
        """A video's windows and their exact scores (None for a whole clip): all its entries after an exact
        scan, or re-scored from the stored vectors through an approximate backend; for a video of more than
        :data:`MOMENT_RESCORE_LIMIT` windows, those overlapping one of its candidates in ``pool`` (sorted; the
        neighbours of the best short windows, and the longer windows a moment may extend to)."""
        view = self.view
        if view.whole[view.first[video]]:
            return None
        pos = np.arange(view.first[video], view.first[video] + view.count[video])
        if scanned is not None:  # the exact scan scored them: of all entries, or of the filtered subset
            where, every = scanned
            return pos, every[pos if where is None else np.searchsorted(where, pos)]
        if len(pos) > MOMENT_RESCORE_LIMIT:
            assert pool is not None
            seeds = pool[np.searchsorted(pool, pos[0]):np.searchsorted(pool, pos[-1], side="right")]
            near = ((view.start[pos][:, None] < view.end[seeds][None]) &
                    (view.end[pos][:, None] > view.start[seeds][None])).any(axis=1)
            pos = pos[near]
        return pos, self.score(pos, query)

    def _moments(self, windows: tuple[np.ndarray, np.ndarray] | None) -> tuple[Moment, ...]:
        if windows is None or self.moments_per_hit <= 0:
            return ()
        pos, scores = windows
        return rank_moments(self.view.start[pos], self.view.end[pos], scores, self.iou, self.moments_per_hit,
                            self.length_prior)


def _first_per_group(groups: np.ndarray, count: int) -> np.ndarray:
    """Which items to keep so that each group keeps only its first ``count`` (in the given order).

    Shape:
        groups [n] -> [n] bool
    """
    order = np.argsort(groups, kind="stable")
    ordered = groups[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    within = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    keep = np.zeros(len(groups), bool)
    keep[order[within < count]] = True
    return keep


def _stamp(root: Path) -> tuple[int, int, int] | None:
    try:
        info = (root / MANIFEST).stat()
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def set_backend(root: str | Path, backend: str, options: Mapping[str, Any] | None = None) -> None:
    """Give an index another backend, its structure built from the stored vectors (e.g. faiss after a build
    staged with the exact backend). The caller holds the index's writer lock, or owns the folder alone."""
    root = Path(root)
    options = split_options(backend, options or {})[1]  # checked before the folder is touched
    manifest = read_manifest(root)
    manifest["backend"] = {"name": backend, "options": dict(options or {}), "state": None}
    write_manifest(root, manifest)
    index = VideoIndex.open(root)  # builds the backend from all vectors
    try:
        index.save()
    finally:
        index.close()


def _duration(metadata: Mapping[str, MetadataValue]) -> float:
    value = metadata.get("duration")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _checked(video_id: str, entries: VideoEntries, dim: int, root: Path) -> VideoEntries:
    """One video's entries validated (finite, non-zero, spans in order) with unit-norm vectors."""
    vectors = np.asarray(entries.vectors, np.float32)
    start, end = np.asarray(entries.start, np.float32), np.asarray(entries.end, np.float32)
    n = len(vectors)
    if vectors.ndim != 2 or vectors.shape[1] != dim or n == 0:
        raise DataError(f"{root}: video {video_id!r} has entries of shape {vectors.shape}; this index holds "
                        f"{dim}-d embeddings, at least one per video")
    if entries.whole and n != 1:
        raise DataError(f"video {video_id!r}: a whole-clip entry is one vector, got {n}")
    if start.shape != (n,) or end.shape != (n,):
        raise DataError(f"video {video_id!r}: {n} vectors but {start.shape} starts and {end.shape} ends")
    if not (np.isfinite(start).all() and np.isfinite(end).all() and (end >= start).all()):
        raise DataError(f"video {video_id!r}: moment times must be finite with end >= start")
    if not np.isfinite(vectors).all():
        raise DataError(f"video {video_id!r}: some embeddings contain NaN or inf; re-embed that video")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if norms.min() == 0:
        raise DataError(f"video {video_id!r}: an embedding is all zeros and cannot be compared by cosine; "
                        "re-embed that video")
    return VideoEntries(vectors / norms, start, end, entries.whole)


def _rewrite_segment(root: Path, seg: Segment, keep: Sequence[int], rows: np.ndarray, dtype: str) -> str:
    """A copy of ``seg`` holding only the videos ``keep`` (their entry ``rows``), keys unchanged."""
    kept = []
    for v in keep:
        mine = rows[seg.video[rows] == v]
        kept.append(VideoEntries(np.asarray(seg.vectors[mine], np.float32), seg.start[mine], seg.end[mine],
                                 bool(seg.whole[mine].all())))
    return write_segment(root, [seg.ids[v] for v in keep], [seg.metadata[v] for v in keep], kept, seg.keys[rows],
                         dtype)


def _persistable(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if isinstance(v, (str, int, float, bool)) or v is None}
