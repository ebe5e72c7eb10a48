"""The query engine: one loaded student + one index (+ the feature store for moments), used by CLI and server.

One search call, :meth:`SearchEngine.search_page` (a query, k, offset, filters, grouping, moments -> one page),
under ``c2kd search`` and ``/api/search``; one moments call, :meth:`SearchEngine.moments`, under ``c2kd moments``
and ``/api/moments`` (:meth:`SearchEngine.can_find_moments` says beforehand whether it can answer). The engine only
reads: building and changing indexes is :mod:`c2kd.search.building`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from c2kd.errors import DataError, UnavailableError
from c2kd.index import Hit, MetadataFilter, VideoIndex
from c2kd.search.model import recorded
from c2kd.search.moments import Moment, find_moments
from c2kd.search.query import MAX_K, Query, QueryError, validate_k
from c2kd.search.windows import Timeline, Windows


@dataclass
class SearchResponse:
    """Ranked videos for one query."""

    query: Query
    hits: list[Hit]
    took_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query.text, "lang": self.query.lang, "took_ms": round(self.took_ms, 3),
                "results": [h.to_dict() for h in self.hits]}


@dataclass
class MomentsResponse:
    """Ranked moments of one video for one query."""

    query: Query
    video_id: str
    duration: float
    moments: list[Moment] = field(default_factory=list)
    took_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query.text, "lang": self.query.lang, "video_id": self.video_id,
                "duration": round(self.duration, 3), "took_ms": round(self.took_ms, 3),
                "moments": [m.to_dict() for m in self.moments]}


@dataclass
class SearchPage:
    """One page of ranked videos: the response, the best moments of each hit (aligned with the hits: the
    index's moment entries, else windows of the feature store when asked) and whether more results follow."""

    response: SearchResponse
    moments: list[list[Moment]]
    offset: int
    more: bool
    #: how many videos passed the filters (what was ranked)
    total: int = 0


class SearchEngine:
    """Answer text queries (any language) against an index, and find moments inside one video.

    Load it once per process: the model and index stay in memory and are safe to share between threads.
    """

    def __init__(self, model, index: VideoIndex | None = None, features=None, shared: bool = True):
        from c2kd.search.model import QueryEmbedder

        self.model = model
        self.index = index
        self._features = features  # a FeatureStore, or None: moments of clips then cannot be found
        self.embedder = QueryEmbedder(model, shared=shared)
        if index is not None and index.dim != model.embed_dim:
            raise DataError(f"{index.root} holds {index.dim}-d embeddings but the model embeds queries in "
                            f"{model.embed_dim}-d; use the checkpoint the index was built with")

    @classmethod
    def open(cls, index_path: str | os.PathLike | VideoIndex | None, checkpoint: str | os.PathLike | None = None,
             features: str | os.PathLike | None = None, device: str = "cpu",
             options: Mapping[str, Any] | None = None, moments: bool = True, shared: bool = True) -> SearchEngine:
        """Open an index (or take one opened already, which the engine then closes) and the checkpoint it was
        built with (or ``checkpoint``, if it has the same weights).

        With ``moments``, also the feature store (``features``, else the one the index was built from, when it
        exists), to find the moments of videos indexed as whole clips; a plain text search leaves it closed.
        ``shared=False`` is for one caller thread (a command): queries are embedded in it, with no worker thread.
        """
        from c2kd.search.model import check_fingerprint, load_search_model

        if isinstance(index_path, VideoIndex):
            index: VideoIndex | None = index_path
            index_path = index_path.root
        else:
            index = VideoIndex.open(index_path, options) if index_path is not None else None
        info = index.info if index is not None else {}
        checkpoint = recorded(checkpoint, info, "checkpoint", index_path)
        if index is not None:
            check_fingerprint(info, checkpoint, index.root)
        features = (features or info.get("features")) if moments else None
        store = None
        if features is not None and Path(features).exists():
            from c2kd.data.features import FeatureStore, store_root

            store = FeatureStore(store_root(Path(features)))
        model = load_search_model(checkpoint, device)
        if store is not None:  # moments embed this store's frames: they must come from the model's encoder
            from c2kd.search.extracting import check_store_encoder

            check_store_encoder(model, store, checkpoint)
        engine = cls(model, index, store, shared)
        engine.warm_up()
        return engine

    def warm_up(self) -> None:
        """Embed and search one query, so that the first real one does not pay for lazy loading (about a second
        for the packaged text engines): reported query times and a server's first answer exclude it."""
        vector = self.embed([Query.make("warm up", None)])
        if self.index is not None and len(self.index):
            self.index.search(vector, k=1)

    def after_fork(self) -> None:
        """Start afresh, in a forked worker process, what it cannot inherit: the embedding thread (threads do
        not survive ``fork``; its queue and locks may have been copied in any state). Model and index are kept:
        their memory is shared with the parent until written."""
        from c2kd.search.model import QueryEmbedder

        self.embedder = QueryEmbedder(self.model, self.embedder.max_batch, self.embedder.shared)

    @property
    def features(self):
        if self._features is None:
            raise DataError("no feature store is configured: pass --features STORE (the store the index was built "
                            "from) to find moments")
        return self._features

    def close(self) -> None:
        self.embedder.close()
        if self.index is not None:
            self.index.close()

    # -- retrieval ----------------------------------------------------------------------------------------
    def embed(self, queries: Sequence[Query]) -> np.ndarray:
        """Shape: Q queries -> [Q, E] float32 unit rows."""
        return self.embedder.embed([q.text for q in queries])

    def search(self, text: str, lang: str | None = None, k: int = 10, filters: MetadataFilter | None = None,
               group: bool = True) -> SearchResponse:
        """Rank the index's videos for one query text (the first page of :meth:`search_page`)."""
        return self.search_page(Query.make(text, lang), k=k, filters=filters, group=group).response

    def search_many(self, queries: Sequence[Query], k: int = 10, filters: MetadataFilter | None = None,
                    group: bool = True) -> list[SearchResponse]:
        """:meth:`search_each`, all answers at once."""
        return list(self.search_each(queries, k=k, filters=filters, group=group))

    def search_each(self, queries: Sequence[Query], k: int = 10, filters: MetadataFilter | None = None,
                    group: bool = True) -> Iterator[SearchResponse]:
        """The first page of :meth:`search_page` for each of many validated queries, one answer at a time as soon
        as it is found (a batch written as it goes): each ``took_ms`` is that query's own time, as if it had been
        asked alone. The index, ``k`` and the filters are checked before the first query."""
        index = self._require_index()
        k = validate_k(k)
        _check_filter_fields(index, filters)

        def answers() -> Iterator[SearchResponse]:
            for number, query in enumerate(queries):  # each later query sees what was committed meanwhile
                fresh = index if number == 0 else self._require_index()
                yield self._page(fresh, query, k, 0, filters, False, None, group).response

        return answers()

    def search_page(self, query: Query, k: int = 10, offset: int = 0, filters: MetadataFilter | None = None,
                    moments: bool = False, lengths: Sequence[float] | None = None,
                    group: bool = True) -> SearchPage:
        """Results ``offset + 1`` to ``offset + k`` of one query (ranks stay global) and whether more follow:
        the one search call of the command line and the HTTP service. ``took_ms`` is this query's own time
        (embedding, search and moments).

        Videos rank by their best moment entry (see :meth:`VideoIndex.search`); ``group=False`` ranks the
        moments themselves, across the collection. Each hit of a video indexed as moments carries its best
        moments from the index; with ``moments``, a video indexed as one clip gets its best window from the
        feature store (embedded now), when it has one.

        The first :data:`MAX_K` results can be paged through; beyond them, filters narrow the search.
        """
        index = self._require_index()
        k = validate_k(k)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise QueryError(f"offset must be a whole number of results to skip (0 or more), got {offset!r}")
        if offset + k > MAX_K:
            raise QueryError(f"only the first {MAX_K} results can be paged through (offset {offset} + k {k}); "
                             "narrow the search with filters")
        _check_filter_fields(index, filters)
        return self._page(index, query, k, offset, filters, moments, lengths, group)

    def _page(self, index: VideoIndex, query: Query, k: int, offset: int, filters: MetadataFilter | None,
              moments: bool, lengths: Sequence[float] | None, group: bool) -> SearchPage:
        """:meth:`search_page` of an index already refreshed, with ``k``, ``offset`` and the filters checked."""
        from c2kd.search.moments import best_moments

        start = time.perf_counter()
        vector = self.embed([query])[0]
        hits = index.search(vector[None], k=offset + k + 1, filters=filters, group=group)[0]
        more = len(hits) > offset + k and offset + k < MAX_K
        hits = hits[offset:offset + k]
        found = [list(h.moments) for h in hits]
        if moments and self._features is not None:
            clips = [i for i, h in enumerate(hits) if not h.moments and h.video_id in self._features]
            store = self._features
            pairs = [(store[hits[i].video_id], store.times(hits[i].video_id)) for i in clips]
            ends = [store.duration(hits[i].video_id) for i in clips]
            for i, moment in zip(clips, best_moments(self.model, pairs, vector, _windows(lengths), ends)):
                found[i] = [moment]
        return SearchPage(SearchResponse(query, hits, (time.perf_counter() - start) * 1000), found, offset, more,
                          index.count(filters))

    def _require_index(self) -> VideoIndex:
        """The index, with what other processes committed meanwhile (``index add`` while serving) loaded."""
        index = self.fresh_index()
        if index is None:
            raise DataError("this engine has no index; open it with an index folder")
        return index

    def fresh_index(self) -> VideoIndex | None:
        """The index (None without one), with what other processes committed meanwhile (``index add`` or
        ``index remove`` while serving) loaded: one ``stat`` when nothing changed.

        Raises:
            UnavailableError: the index folder was removed, moved or damaged since it was opened.
        """
        from c2kd.index.segments import MANIFEST

        index = self.index
        if index is None:
            return None
        try:
            if not (index.root / MANIFEST).is_file():
                raise DataError(f"{index.root / MANIFEST} is gone")
            index.refresh()
        except (DataError, OSError) as exc:
            raise UnavailableError(f"the index {index.root} cannot be read any more ({exc}): it was removed, moved "
                                   "or damaged while this process ran; restore it (or build it again with `c2kd "
                                   "index build`), then restart") from exc
        return index

    # -- moments ------------------------------------------------------------------------------------------
    @property
    def has_feature_store(self) -> bool:
        """Whether a feature store is open, to find the moments of videos indexed as whole clips."""
        return self._features is not None

    def can_find_moments(self, video_id: str) -> bool:
        """Whether :meth:`moments` can answer for this video: it is indexed as moment windows, or the feature
        store holds its frames."""
        index = self.fresh_index()
        if index is not None and video_id in index and index.has_moments(video_id):
            return True
        return self._features is not None and video_id in self._features

    def moments(self, video_id: str, text: str, lang: str | None = None, k: int = 5,
                lengths: Sequence[float] | None = None, iou_threshold: float = 0.5) -> MomentsResponse:
        """Moments of an indexed video (its moment entries, no re-embedding) or of a video of the feature store
        (windows of ``lengths`` seconds embedded now)."""
        if self.fresh_index() is not None:
            assert self.index is not None
            if video_id in self.index and self.index.has_moments(video_id):
                return self._indexed_moments(video_id, Query.make(text, lang), k, iou_threshold)
        store = self.features
        if video_id not in store:
            raise QueryError(f"video {video_id!r} has no features in {store.root}; check the id, or extract the "
                             "video with `c2kd extract`")
        return self.moments_of(video_id, store[video_id], store.times(video_id), text, lang, k, lengths,
                               iou_threshold, store.duration(video_id))

    def _indexed_moments(self, video_id: str, query: Query, k: int, iou_threshold: float) -> MomentsResponse:
        from c2kd.index.spans import rank_moments

        assert self.index is not None
        k = validate_k(k)
        _check_iou(iou_threshold)
        start = time.perf_counter()
        entries = self.index.entries_of(video_id)
        scores = entries.vectors @ self.embed([query])[0]
        found = list(rank_moments(entries.start, entries.end, scores, iou_threshold, k))
        duration = float(self.index.metadata(video_id).get("duration") or entries.end.max())  # type: ignore[arg-type]
        return MomentsResponse(query, video_id, duration, found, (time.perf_counter() - start) * 1000)

    def moments_of(self, video_id: str, features: np.ndarray, times: np.ndarray | None, text: str,
                   lang: str | None = None, k: int = 5, lengths: Sequence[float] | None = None,
                   iou_threshold: float = 0.5, duration: float | None = None) -> MomentsResponse:
        """Moments of any per-second features [T, F] (e.g. freshly extracted from a file) of a video ``duration``
        seconds long (None: where its last row ends)."""
        query = Query.make(text, lang)
        k = validate_k(k)
        _check_iou(iou_threshold)
        expected = self.model.feature_dim
        if np.asarray(features).ndim != 2 or np.asarray(features).shape[1] != expected:
            raise DataError(f"video {video_id!r}: features of shape {np.asarray(features).shape}, but the model "
                            f"reads {expected}-d frame features; extract them with the same frame encoder")
        start = time.perf_counter()
        vector = self.embed([query])[0]
        found = find_moments(self.model, features, times, vector, _windows(lengths), iou_threshold, k, duration)
        duration = Timeline.of(times, len(features), duration).duration
        return MomentsResponse(query, video_id, duration, found, (time.perf_counter() - start) * 1000)


def _check_filter_fields(index: VideoIndex, filters: MetadataFilter | None) -> None:
    """Refuse a filter on a field no indexed video has (it would silently match nothing), naming the fields."""
    if not filters:
        return
    known = index.field_names()
    unknown = sorted(str(f) for f in filters if f not in known)
    if unknown:
        have = ", ".join(sorted(known)) if known else "none (the index holds no metadata)"
        raise QueryError(f"no indexed video has the field {unknown[0]!r} to filter on; the fields are: {have}")


def _windows(lengths: Sequence[float] | None) -> Windows:
    """The windows of these lengths (seconds) at the default stride; None: the default windows."""
    return Windows() if lengths is None else Windows(tuple(float(x) for x in lengths))


def _check_iou(iou_threshold: float) -> None:
    if not 0.0 <= iou_threshold < 1.0:
        raise QueryError(f"iou_threshold must be in [0, 1), got {iou_threshold}")
