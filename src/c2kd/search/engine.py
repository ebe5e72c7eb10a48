"""The query engine: one loaded student + one index (+ the feature store for moments), used by CLI and server.

One search call, :meth:`SearchEngine.search_page` (a query, k, offset, filters, grouping, moments, channel -> one
:class:`SearchPage`), under ``c2kd search`` and ``/api/search``; one moments call, :meth:`SearchEngine.moments`
(-> one :class:`MomentsResponse`), under ``c2kd moments`` and ``/api/moments`` (:meth:`SearchEngine.can_find_moments`
says beforehand whether it can answer). When the index has said entries (subtitles, speech), both rank what is
shown and what is said by one rule (:mod:`c2kd.search.channels`), each result saying what found it. The engine only
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
from c2kd.search.channels import FusedMoment, Fusion, check_channel, fuse_moments, fuse_videos
from c2kd.search.model import recorded
from c2kd.search.moments import Moment, find_moments
from c2kd.search.query import MAX_K, Query, QueryError, validate_k
from c2kd.search.said_search import SaidChannel
from c2kd.search.windows import Timeline, Windows

#: shown candidates a search by channels looks at, as a multiple of the results asked for (at least 50; the said
#: channel scores every video it holds)
CANDIDATES = 5


@dataclass
class Result:
    """One ranked video (or, ungrouped, one moment entry): its score, metadata and best moments, best first (the
    index's moment entries; the best window of a clip, when asked; with channels, fused with its said moments,
    each saying what found it); ``found_by``: shown, said or both, when ranked by channels."""

    video_id: str
    score: float
    rank: int
    metadata: dict[str, Any] = field(default_factory=dict)
    moments: tuple[Moment | FusedMoment, ...] = ()
    found_by: str | None = None

    @property
    def moment(self) -> Moment | FusedMoment | None:
        return self.moments[0] if self.moments else None

    def to_dict(self) -> dict[str, Any]:
        kind = {"found_by": self.found_by} if self.found_by is not None else {}
        return {"rank": self.rank, "video_id": self.video_id, "score": self.score, **kind, "metadata": self.metadata,
                "moment": self.moment.to_dict() if self.moment is not None else None,
                "moments": [m.to_dict() for m in self.moments]}


@dataclass
class SearchPage:
    """One page of results for one query: ranks ``offset + 1`` on (ranks stay global), whether more follow and
    how many videos passed the filters (what was ranked); ``channel``: shown, said or both when ranked by
    channels (None: by the shown entries alone, as the index ranks them)."""

    query: Query
    hits: list[Result]
    took_ms: float
    offset: int = 0
    more: bool = False
    total: int = 0
    grouped: bool = True
    channel: str | None = None

    def to_dict(self) -> dict[str, Any]:
        channel = {"channel": self.channel} if self.channel is not None else {}
        return {"query": self.query.text, "lang": self.query.lang, **channel, "took_ms": round(self.took_ms, 3),
                "results": [h.to_dict() for h in self.hits], "offset": self.offset, "more": self.more,
                "grouped": self.grouped, "total": self.total}


@dataclass
class MomentsResponse:
    """Ranked moments of one video for one query; ``channel`` as in :class:`SearchPage`."""

    query: Query
    video_id: str
    duration: float
    moments: Sequence[Moment | FusedMoment] = ()
    took_ms: float = 0.0
    channel: str | None = None

    def to_dict(self) -> dict[str, Any]:
        channel = {"channel": self.channel} if self.channel is not None else {}
        return {"query": self.query.text, "lang": self.query.lang, "video_id": self.video_id,
                "duration": round(self.duration, 3), **channel, "took_ms": round(self.took_ms, 3),
                "moments": [m.to_dict() for m in self.moments]}


class SearchEngine:
    """Answer text queries (any language) against an index, and find moments inside one video.

    Load it once per process: the model and index stay in memory and are safe to share between threads.
    """

    def __init__(self, model, index: VideoIndex | None = None, features=None, shared: bool = True,
                 said: SaidChannel | None = None):
        """``said``: the index's said channel (:meth:`open` opens it when the index has one)."""
        from c2kd.search.model import QueryEmbedder

        self.model = model
        self.index = index
        self._features = features  # a FeatureStore, or None: moments of clips then cannot be found
        self.said = said
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
        said = SaidChannel.open(index.root, model) if index is not None else None
        engine = cls(model, index, store, shared, said)
        engine.warm_up()
        return engine

    def warm_up(self) -> None:
        """Embed and search one query, so that the first real one does not pay for lazy loading (about a second
        for the packaged text engines): reported query times and a server's first answer exclude it."""
        vector = self.embed([Query.make("warm up", None)])
        if self.index is not None and len(self.index):
            self.index.search(vector, k=1)
        if self.said is not None:
            self.said.embed("warm up")

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
               group: bool = True, channel: str | None = None) -> SearchPage:
        """Rank the index's videos for one query text (the first page of :meth:`search_page`)."""
        return self.search_page(Query.make(text, lang), k=k, filters=filters, group=group, channel=channel)

    def search_many(self, queries: Sequence[Query], k: int = 10, filters: MetadataFilter | None = None,
                    group: bool = True, channel: str | None = None) -> list[SearchPage]:
        """:meth:`search_each`, all answers at once."""
        return list(self.search_each(queries, k=k, filters=filters, group=group, channel=channel))

    def search_each(self, queries: Sequence[Query], k: int = 10, filters: MetadataFilter | None = None,
                    group: bool = True, channel: str | None = None) -> Iterator[SearchPage]:
        """The first page of :meth:`search_page` for each of many validated queries, one answer at a time as soon
        as it is found (a batch written as it goes): each ``took_ms`` is that query's own time, as if it had been
        asked alone. The index, ``k``, the filters and the channel are checked before the first query."""
        index = self._require_index()
        k = validate_k(k)
        _check_filter_fields(index, filters)
        chosen = self._channel(channel, group)

        def answers() -> Iterator[SearchPage]:
            for number, query in enumerate(queries):  # each later query sees what was committed meanwhile
                fresh = index if number == 0 else self._require_index()
                yield self._page(fresh, query, k, 0, filters, False, None, group, chosen)

        return answers()

    def search_page(self, query: Query, k: int = 10, offset: int = 0, filters: MetadataFilter | None = None,
                    moments: bool = False, lengths: Sequence[float] | None = None,
                    group: bool = True, channel: str | None = None) -> SearchPage:
        """Results ``offset + 1`` to ``offset + k`` of one query (ranks stay global) and whether more follow:
        the one search call of the command line and the HTTP service. ``took_ms`` is this query's own time
        (embedding, search and moments).

        Videos rank by their best moment entry (see :meth:`VideoIndex.search`); ``group=False`` ranks the
        moments themselves, across the collection. Each hit of a video indexed as moments carries its best
        moments from the index; with ``moments``, a video indexed as one clip gets its best window from the
        feature store (embedded now), when it has one.

        ``channel`` (``shown``, ``said`` or ``both``; default ``both`` when the index has said entries and
        ``group``) ranks videos by what is shown, what is said, or both by the rule of
        :mod:`c2kd.search.channels`, each result and moment saying what found it.

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
        return self._page(index, query, k, offset, filters, moments, lengths, group, self._channel(channel, group))

    def _channel(self, channel: str | None, group: bool = True) -> str | None:
        """The channel a search ranks by (None: the shown entries alone, as the index ranks them), checked."""
        if channel is None:
            return "both" if group and self.said is not None else None
        check_channel(channel)
        if not group:
            raise QueryError("ungrouped searches rank the shown moment entries themselves: leave out the channel "
                             "(--channel) to rank moments across the collection")
        if channel != "shown" and self.said is None:
            raise DataError(f"--channel {channel}: this index has no said moments (its store held no subtitles or "
                            "speech when it was built); extract them (`c2kd extract`, `c2kd data subtitles`) and "
                            "rebuild the index, or search --channel shown")
        return channel

    @property
    def fusion(self) -> Fusion:
        """The rule that ranks the channels (the one recorded with the said entries; without them, raw cosines)."""
        return self.said.fusion if self.said is not None else Fusion()

    def _page(self, index: VideoIndex, query: Query, k: int, offset: int, filters: MetadataFilter | None,
              moments: bool, lengths: Sequence[float] | None, group: bool, channel: str | None) -> SearchPage:
        """:meth:`search_page` of an index already refreshed, with ``k``, ``offset``, the filters and the channel
        checked."""
        start = time.perf_counter()
        vector = self.embed([query])[0]
        wanted = offset + k + 1  # one more than the page: whether a next page exists
        said: dict[str, tuple[float, list[tuple[float, float, float, str]]]] = {}
        ranked: list[tuple[str, float, str | None, Hit | None]]  # video, score, found by, its shown hit
        if channel is None:  # ungrouped, a video can rank more than once (one hit per moment entry)
            ranked = [(h.video_id, h.score, None, h) for h in
                      index.search(vector[None], k=wanted, filters=filters, group=group)[0]]
        else:
            wide = min(MAX_K, max((offset + k) * CANDIDATES, 50))
            shown = {h.video_id: h for h in index.search(vector[None], k=wide, filters=filters)[0]}
            if channel != "shown":
                assert self.said is not None
                said = {v: found for v, found in self.said.videos(query.text).items()
                        if v in index and (not filters or v in shown)}  # said alone cannot tell a filter's videos
            ranked = [(v, score, found_by, shown.get(v)) for v, score, found_by in fuse_videos(
                {v: h.score for v, h in shown.items()}, {v: s for v, (s, _) in said.items()}, self.fusion,
                channel, wanted)]
        more = len(ranked) > offset + k and offset + k < MAX_K
        page = ranked[offset:offset + k]
        windows = self._clip_windows([v for v, _, _, hit in page if hit is None or not hit.moments], vector,
                                     lengths) if moments else {}
        results = []
        for rank, (video_id, score, found_by, hit) in enumerate(page, offset + 1):
            spans: list[Moment | FusedMoment] = list(hit.moments) if hit is not None else []
            if not spans and video_id in windows:
                spans = [windows[video_id]]
            if channel is not None:
                spans = list(fuse_moments([(m.start, m.end, m.score) for m in spans],
                                          said.get(video_id, (0.0, []))[1], self.fusion, channel))
            metadata = hit.metadata if hit is not None else dict(index.metadata(video_id))
            results.append(Result(video_id, score, rank, metadata, tuple(spans), found_by))
        return SearchPage(query, results, (time.perf_counter() - start) * 1000, offset, more, index.count(filters),
                          group, channel)

    def _clip_windows(self, video_ids: Sequence[str], vector: np.ndarray, lengths: Sequence[float] | None
                      ) -> dict[str, Moment]:
        """The best window of each of these videos that the feature store holds (embedded now)."""
        from c2kd.search.moments import best_moments

        store = self._features
        clips = [v for v in video_ids if store is not None and v in store]
        if store is None or not clips:
            return {}
        pairs = [(store[v], store.times(v)) for v in clips]
        ends = [store.duration(v) for v in clips]
        return dict(zip(clips, best_moments(self.model, pairs, vector, _windows(lengths), ends), strict=True))

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
                lengths: Sequence[float] | None = None, iou_threshold: float = 0.5,
                channel: str | None = None) -> MomentsResponse:
        """Moments of an indexed video (its moment entries, no re-embedding) or of a video of the feature store
        (windows of ``lengths`` seconds embedded now). ``channel`` as in :meth:`search_page`: by default, when
        the index has said entries, its shown and said moments in one ranking, overlapping ones merged as found
        by both (:func:`~c2kd.search.channels.fuse_moments`)."""
        channel = self._channel(channel)
        query = Query.make(text, lang)
        if channel is None:
            return self._shown_moments(video_id, query, k, lengths, iou_threshold)
        k = validate_k(k)
        _check_iou(iou_threshold)
        start = time.perf_counter()
        shown: list[tuple[float, float, float]] = []
        duration = 0.0
        if channel != "said":
            found = self._shown_moments(video_id, query, k, lengths, iou_threshold)
            shown, duration = [(m.start, m.end, m.score) for m in found.moments], found.duration
        said: list[tuple[float, float, float, str]] = []
        if channel != "shown":
            assert self.said is not None
            if video_id in self.said.index:
                said = self.said.moments(video_id, query.text, k, iou_threshold)
            elif channel == "said":
                raise DataError(f"video {video_id!r} has no said moments (no subtitles or speech were indexed for "
                                "it)")
        if not duration:
            index = self.index
            meta = dict(index.metadata(video_id)) if index is not None and video_id in index else {}
            duration = float(meta.get("duration") or max((end for _, end, *_ in said), default=0.0))  # type: ignore[arg-type]
        found_both = fuse_moments(shown, said, self.fusion, channel, iou_threshold)[:k]
        return MomentsResponse(query, video_id, duration, found_both, (time.perf_counter() - start) * 1000,
                               channel)

    def _shown_moments(self, video_id: str, query: Query, k: int, lengths: Sequence[float] | None,
                       iou_threshold: float) -> MomentsResponse:
        if self.fresh_index() is not None:
            assert self.index is not None
            if video_id in self.index and self.index.has_moments(video_id):
                return self._indexed_moments(video_id, query, k, iou_threshold)
        store = self.features
        if video_id not in store:
            raise QueryError(f"video {video_id!r} has no features in {store.root}; check the id, or extract the "
                             "video with `c2kd extract`")
        return self.moments_of(video_id, store[video_id], store.times(video_id), query.text, query.lang, k, lengths,
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
