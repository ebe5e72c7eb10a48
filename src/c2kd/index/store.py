"""``VideoIndex``: video embeddings + metadata on disk, searched through a pluggable backend.

Example:
    >>> index = VideoIndex.create(tmp_path / "idx", dim=4)  # doctest: +SKIP
    >>> index.add(["v1", "v2"], vectors, [{"split": "test"}, {"split": "train"}])  # doctest: +SKIP
    >>> index.search(query_vectors, k=5, filters={"split": "test"})[0][0].video_id  # doctest: +SKIP
    'v1'
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from c2kd.errors import ConfigError, DataError
from c2kd.index.base import Backend, Hit
from c2kd.index.exact import topk_inner_product
from c2kd.index.filters import MetadataFilter, MetadataValue, normalize_filter
from c2kd.index.segments import (MANIFEST, Segment, garbage_collect, new_manifest, read_manifest, read_segment,
                                 write_manifest, write_segment, writer_lock)

#: backend name -> "module:class"; the classes import their optional dependency only when built
BACKENDS: dict[str, str] = {
    "exact": "c2kd.index.exact:ExactBackend",
    "faiss": "c2kd.index.faiss_backend:FaissBackend",
    "qdrant": "c2kd.index.qdrant_backend:QdrantBackend",
}
#: with a metadata filter that leaves at most this many videos, approximate backends are bypassed for an
#: exact scan of those videos (exact and faster than probing an index for a few matches)
EXACT_SUBSET_LIMIT = 20_000


def make_backend(name: str, dim: int, options: Mapping[str, Any] | None = None) -> Backend:
    """Instantiate a backend by name (``exact``, ``faiss``, ``qdrant``)."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown index backend {name!r}; choose one of {sorted(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(dim, options)


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``["nlist=1024", "kind=hnsw"]`` -> ``{"nlist": 1024, "kind": "hnsw"}`` (numbers parsed)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"backend option {item!r} must look like name=value, e.g. nprobe=32")
        key, raw = item.split("=", 1)
        value: Any = raw
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                continue
        out[key.strip()] = value
    return out


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
    """An immutable snapshot of the index's ids, keys (ascending), metadata and segment vectors."""

    segments: list[Segment]
    ids: list[str] = field(init=False)
    keys: np.ndarray = field(init=False)
    metadata: list[dict[str, MetadataValue]] = field(init=False)
    position: dict[str, int] = field(init=False)
    _starts: np.ndarray = field(init=False)
    _inverted: dict[str, dict[str, np.ndarray]] = field(init=False, default_factory=dict)
    _fields: dict[str, dict[str, int]] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.ids = [i for s in self.segments for i in s.ids]
        self.keys = np.concatenate([s.keys for s in self.segments]) if self.segments else np.zeros(0, np.int64)
        self.metadata = [m for s in self.segments for m in s.metadata]
        self.position = {vid: i for i, vid in enumerate(self.ids)}
        self._starts = np.cumsum([0] + [len(s.ids) for s in self.segments])

    def vectors(self, positions: np.ndarray | None = None) -> np.ndarray:
        """Vectors of some positions (all when None). Shape: [n, E] float32."""
        if positions is None:
            parts = [s.vectors for s in self.segments]
            return parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
        seg = np.searchsorted(self._starts, positions, side="right") - 1
        out = [self.segments[s].vectors[positions[seg == s] - self._starts[s]] for s in np.unique(seg)]
        order = np.argsort(np.argsort(seg, kind="stable"), kind="stable")
        return np.concatenate(out)[order] if out else np.zeros((0, 0), np.float32)

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
        return [{**m, "video_id": vid} for vid, m in zip(self.ids, self.metadata)]

    def allowed_positions(self, filters: Mapping[str, list]) -> np.ndarray:
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

    # -- opening and creating -----------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, dim: int, backend: str = "exact", options: Mapping[str, Any] | None = None,
               info: Mapping[str, Any] | None = None) -> VideoIndex:
        """Start an empty index folder (which must not hold an index yet)."""
        root = Path(root)
        if (root / MANIFEST).exists():
            raise DataError(f"{root} already holds an index; open it, or delete it to start over")
        make_backend(backend, dim, options)  # validate name and options early
        root.mkdir(parents=True, exist_ok=True)
        write_manifest(root, new_manifest(dim, backend, options, info))
        return cls.open(root)

    @classmethod
    def open(cls, root: str | Path, options: Mapping[str, Any] | None = None) -> VideoIndex:
        """Load an index; ``options`` override backend settings for this process (e.g. ``nprobe``)."""
        root = Path(root)
        manifest = read_manifest(root)
        dim = int(manifest["dim"])
        view = _View([read_segment(root, s["name"], dim) for s in manifest["segments"]])
        spec = manifest["backend"]
        backend = make_backend(spec["name"], dim, {**spec.get("options", {}), **(options or {})})
        state_dir = root / (spec.get("state") or ("qdrant" if backend.state == "live" else "backend-none"))
        vectors = view.vectors() if len(view.ids) else np.zeros((0, dim), np.float32)
        backend.load_state(state_dir, view.keys, vectors, view.payloads())
        if backend.state == "live" and spec.get("state") != state_dir.name:
            spec["state"] = state_dir.name
        return cls(root, manifest, view, backend, options)

    @classmethod
    def build(cls, root: str | Path, ids: Sequence[str], vectors: np.ndarray,
              metadata: Sequence[Mapping[str, MetadataValue]] | None = None, backend: str = "exact",
              options: Mapping[str, Any] | None = None, info: Mapping[str, Any] | None = None) -> VideoIndex:
        """Write a complete index in one step, replacing any index at ``root`` atomically."""
        from c2kd.io import atomic_path

        with writer_lock(Path(root), "a build of this index"), atomic_path(root) as tmp:
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

    def _reload_if_changed(self) -> None:
        if int(read_manifest(self.root)["generation"]) == int(self._manifest["generation"]):
            return
        with self._lock.write():
            self.backend.close()
            fresh = VideoIndex.open(self.root, self._options)
            self._manifest, self._view, self.backend = fresh._manifest, fresh._view, fresh.backend

    def save(self) -> None:
        """Persist the backend's current structure (done by every change; needed after a backend rebuild)."""
        with self.writing(), self._lock.write():
            self._commit(self._manifest, self._view)

    def close(self) -> None:
        self.backend.close()

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

    def __len__(self) -> int:
        return len(self._view.ids)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._view.position

    def metadata(self, video_id: str) -> dict[str, MetadataValue]:
        pos = self._view.position.get(video_id)
        if pos is None:
            raise KeyError(f"video {video_id!r} is not in the index {self.root}")
        return dict(self._view.metadata[pos])

    def vector(self, video_id: str) -> np.ndarray:
        """The stored embedding of one video. Shape: [E] float32."""
        self.metadata(video_id)
        return np.asarray(self._view.vectors(np.asarray([self._view.position[video_id]]))[0], np.float32)

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
        return {"path": str(self.root), "videos": len(self), "dim": self.dim, "segments": len(self._view.segments),
                **self.backend.describe(), "info": self.info}

    # -- changes ------------------------------------------------------------------------------------------
    def add(self, ids: Sequence[str], vectors: np.ndarray, metadata: Sequence[Mapping[str, MetadataValue]] | None = None,
            replace: bool = False) -> int:
        """Add videos (their embeddings are L2-normalised). Existing ids are an error unless ``replace``.

        Shape:
            ids: N strings, vectors: [N, E], metadata: N dicts (optional)
        """
        ids = [str(i) for i in ids]
        vectors = np.asarray(vectors, np.float32)
        metadata = [dict(m) for m in metadata] if metadata is not None else [{} for _ in ids]
        if vectors.ndim != 2 or vectors.shape != (len(ids), self.dim):
            raise DataError(f"{self.root}: got vectors of shape {vectors.shape} for {len(ids)} ids; "
                            f"this index holds {self.dim}-d embeddings")
        if len(metadata) != len(ids):
            raise DataError(f"{len(metadata)} metadata rows for {len(ids)} ids")
        if len(set(ids)) != len(ids):
            raise DataError("the same video id is given twice in one add; ids must be unique")
        if not np.isfinite(vectors).all():
            raise DataError("some embeddings contain NaN or inf; re-embed those videos")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if len(ids) and norms.min() == 0:
            raise DataError("an embedding is all zeros and cannot be compared by cosine; re-embed that video")
        vectors = vectors / np.maximum(norms, 1e-12)
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
                keys = np.arange(manifest["next_key"], manifest["next_key"] + len(ids), dtype=np.int64)
                name = write_segment(self.root, ids, keys, vectors, metadata)
                segment = read_segment(self.root, name, self.dim)
                self.backend.add(keys, segment.vectors, [{**m, "video_id": v} for v, m in zip(ids, metadata)])
                manifest = {**manifest, "next_key": int(keys[-1]) + 1,
                            "segments": [*manifest["segments"], {"name": name, "count": len(ids)}]}
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
        segments, entries = [], []
        for seg in view.segments:
            keep = [i for i, vid in enumerate(seg.ids) if vid not in drop]
            if len(keep) == len(seg.ids):
                segments.append(seg)
                entries.append({"name": seg.name, "count": len(seg.ids)})
            elif keep:
                rows = np.asarray(keep)
                name = write_segment(self.root, [seg.ids[i] for i in keep], seg.keys[rows],
                                     np.asarray(seg.vectors[rows]), [seg.metadata[i] for i in keep])
                segments.append(read_segment(self.root, name, self.dim))
                entries.append({"name": name, "count": len(keep)})
        self.backend.remove(view.keys[[view.position[i] for i in ids]])
        self._commit({**self._manifest, "segments": entries}, _View(segments))

    def _commit(self, manifest: dict[str, Any], view: _View) -> None:
        """Save the backend's structure (if it has one), then switch the manifest, then drop stale files."""
        manifest = {**manifest, "generation": int(manifest["generation"]) + 1, "count": len(view.ids)}
        backend_spec = dict(manifest["backend"])
        if self.backend.state == "snapshot":
            backend_spec["state"] = f"backend-{manifest['generation']}"
            self.backend.save(self.root / backend_spec["state"])
        backend_spec["options"] = {**backend_spec.get("options", {}), **_persistable(self.backend.options)}
        manifest["backend"] = backend_spec
        write_manifest(self.root, manifest)
        self._manifest, self._view = manifest, view
        garbage_collect(self.root, manifest)

    # -- search -------------------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int = 10, filters: MetadataFilter | None = None) -> list[list[Hit]]:
        """Top-k videos for each query embedding, best first, among the videos passing ``filters``.

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
            view = self._view
            if not norm:
                scores, keys = self.backend.search(queries, k)
            else:
                allowed = view.allowed_positions(norm)
                if len(allowed) <= EXACT_SUBSET_LIMIT or self.backend.name == "exact":
                    s, rows = topk_inner_product(view.vectors(allowed), queries, k)
                    scores = np.full((len(queries), k), -np.inf, np.float32)
                    keys = np.full((len(queries), k), -1, np.int64)
                    scores[:, : s.shape[1]], keys[:, : s.shape[1]] = s, view.keys[allowed][rows]
                elif self.backend.native_filters:
                    scores, keys = self.backend.search(queries, k, filters=norm)
                else:
                    scores, keys = self.backend.search(queries, k, allowed=view.keys[allowed])
            return [self._hits(view, s, key) for s, key in zip(scores, keys)]

    def _hits(self, view: _View, scores: np.ndarray, keys: np.ndarray) -> list[Hit]:
        valid = keys >= 0
        keys, scores = keys[valid], scores[valid]
        pos = np.searchsorted(view.keys, keys)
        hits = []
        for rank, (p, key, score) in enumerate(zip(pos, keys, scores), start=1):
            if p < len(view.keys) and view.keys[p] == key:
                hits.append(Hit(view.ids[p], float(score), rank, dict(view.metadata[p])))
        return hits


def _persistable(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if isinstance(v, (str, int, float, bool)) or v is None}
