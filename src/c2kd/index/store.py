"""``VideoIndex``: the index's lifecycle: create, open, change (add, remove) and commit across processes, reload.

Its videos and entries live in segments on disk (:mod:`c2kd.index.segments`), seen through an immutable
snapshot (:mod:`c2kd.index.view`) swapped under a read/write lock (:mod:`c2kd.index.rwlock`); a search runs
over the snapshot (:mod:`c2kd.index.search`) and its backend (:mod:`c2kd.index.base`).

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
from pathlib import Path
from typing import Any

import numpy as np

from c2kd.errors import ConfigError, DataError
from c2kd.index.base import Backend, Hit, make_backend
from c2kd.index.filters import MetadataFilter, MetadataValue, normalize_filter
from c2kd.index.options import CANDIDATES_PER_HIT, split_options
from c2kd.index.rwlock import ReadWriteLock
from c2kd.index.search import Search
from c2kd.index.segments import (
    MANIFEST,
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
from c2kd.index.spans import LENGTH_PRIOR
from c2kd.index.view import View


class VideoIndex:
    """A persistent, updatable index of video embeddings with metadata filters.

    Safe for many concurrent searches in one process; changes take an exclusive lock, in-process and
    across processes. Open it once per process (a server loads it at start).
    """

    def __init__(self, root: Path, manifest: dict[str, Any], view: View, backend: Backend,
                 options: Mapping[str, Any] | None = None):
        self.root = root
        self._manifest = manifest
        self._view = view
        self.backend = backend
        self._options = dict(options or {})
        self._lock = ReadWriteLock()
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
        while True:
            try:
                view, backend = _load(root, manifest, options or {})
            except (OSError, DataError, RuntimeError):
                # another process may have committed meanwhile and deleted files this manifest lists: the
                # newer manifest is read and loaded instead; with no newer one the error is real damage
                newer = read_manifest(root)
                if int(newer["generation"]) == int(manifest["generation"]):
                    raise
                manifest = newer
                continue
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
        """Load the committed state if it is newer than this one; searches meanwhile see the old whole state
        (its files stay readable: its segments are open, even once another process deletes them)."""
        if int(read_manifest(self.root)["generation"]) == int(self._manifest["generation"]):
            return
        fresh = VideoIndex.open(self.root, self._options)
        with self._lock.write():
            old_view, old_backend = self._view, self.backend
            self._manifest, self._view, self.backend = fresh._manifest, fresh._view, fresh.backend
        old_backend.close()
        old_view.close()

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

    def count(self, filters: MetadataFilter | None = None) -> int:
        """How many videos pass ``filters`` (all of them without): how many a search ranks."""
        normalized = normalize_filter(filters)
        view = self._view
        return len(view.allowed_videos(normalized)) if normalized else len(view.ids)

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
                self._commit(manifest, View([*self._view.segments, segment]))
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
        self._commit({**self._manifest, "segments": listed}, View(segments))

    def _commit(self, manifest: dict[str, Any], view: View) -> None:
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
            search = Search(self._view, self.backend, norm, moments, iou, length_prior, per_hit)
            return [search.videos(q, k) if group else search.moments(q, k) for q in queries]


def _load(root: Path, manifest: Mapping[str, Any], options: Mapping[str, Any]) -> tuple[View, Backend]:
    """The view and the backend of the state ``manifest`` lists (its segments read, the backend restored)."""
    dim = int(manifest["dim"])
    view = View([read_segment(root, s["name"], dim) for s in manifest["segments"]])
    spec = manifest["backend"]
    backend_options = split_options(spec["name"], options, searching=True)[1]
    backend = make_backend(spec["name"], dim, {**spec.get("options", {}), **backend_options})
    try:
        view.read_rows_directly(root)  # rows a search re-scores are read a few at a time, not mapped in
        # a live database keeps the folder named after its backend (qdrant/, milvus/)
        state_dir = root / (spec.get("state") or (backend.name if backend.state == "live" else "backend-none"))
        backend.load_state(state_dir, view.keys, lambda: view.all_vectors(dim), view.payloads)
    except BaseException:
        backend.close()
        view.close()
        raise
    if backend.state == "live" and spec.get("state") != state_dir.name:
        spec["state"] = state_dir.name
    return view, backend


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
