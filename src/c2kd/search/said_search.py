"""Search by what is shown, what is said, or both: an index's shown entries (the engine) and its said entries
(:mod:`c2kd.search.said`) ranked by one rule (:mod:`c2kd.search.channels`).

The rule's settings are kept in ``INDEX/said/said.json`` (``fusion``): by default each channel is standardised
with the scores of sample queries (lines of the indexed videos, embedded by each channel's text encoder) against
its entries, and the rest is what ``bench/bench_said_shown.py`` chose on val (said weight 0.4, the ``max`` rule,
videos standardised by those statistics, moments by the fused score: the ``DEFAULT_*`` of
:mod:`c2kd.search.channels`); :func:`~c2kd.search.channels.calibrate` learns them on validation queries instead
(:func:`record_fusion` writes them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from c2kd.errors import DataError
from c2kd.index import MetadataFilter
from c2kd.io import write_json
from c2kd.search.channels import (
    DEFAULT_BOTH_FIRST,
    DEFAULT_RULE,
    DEFAULT_SAID_WEIGHT,
    DEFAULT_SCALE,
    FusedMoment,
    Fusion,
    check_channel,
    fuse_moments,
    fuse_videos,
)
from c2kd.search.query import MAX_K, Query
from c2kd.search.said import FOLDER, SaidEncoder, SaidIndex

#: shown candidates looked at per query, as a multiple of k (the said channel scores every video it holds)
CANDIDATES = 5
#: pseudo-queries used to standardise the channels when the rule is not calibrated
SAMPLE_QUERIES = 256


@dataclass
class ChannelHit:
    """A video found by the shown channel, the said channel or both, with its moments (each saying what found
    it and, for said moments, the line said there)."""

    video_id: str
    score: float
    rank: int
    found_by: str
    metadata: dict[str, Any] = field(default_factory=dict)
    moments: list[FusedMoment] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "video_id": self.video_id, "score": self.score, "found_by": self.found_by,
                "metadata": self.metadata, "moment": self.moments[0].to_dict() if self.moments else None,
                "moments": [m.to_dict() for m in self.moments]}


@dataclass
class ChannelResponse:
    query: Query
    channel: str
    hits: list[ChannelHit]
    took_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query.text, "lang": self.query.lang, "channel": self.channel,
                "took_ms": round(self.took_ms, 3), "results": [h.to_dict() for h in self.hits]}


def read_fusion(said: SaidIndex) -> Fusion:
    """The rule's settings recorded beside the said entries (defaults when none are)."""
    return Fusion.from_dict(said.meta.get("fusion"))


def record_fusion(index_root: str | Path, fusion: Fusion, how: str) -> None:
    """Write the rule's settings into ``said.json`` (``how``: where they came from)."""
    path = Path(index_root) / FOLDER / "said.json"
    meta = json.loads(path.read_text())
    meta["fusion"] = {**fusion.to_dict(), "how": how}
    write_json(path, meta)


def default_fusion(index, said: SaidIndex, model, encoder: SaidEncoder, sample: int = SAMPLE_QUERIES,
                   seed: int = 0) -> Fusion:
    """Standardise each channel by the scores of up to ``sample`` of the indexed lines, used as queries, with a
    sample of its entries (the distribution a query's scores come from); the said weight, combination, video
    standardisation and moment order chosen on val (:data:`~c2kd.search.channels.DEFAULT_SAID_WEIGHT`,
    ``DEFAULT_RULE``, ``DEFAULT_SCALE``, ``DEFAULT_BOTH_FIRST``)."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(said), size=min(sample, len(said)), replace=False)
    texts = [said.text[i] for i in picks]
    videos = list(index.ids)
    chosen = rng.choice(len(videos), size=min(sample, len(videos)), replace=False)
    shown_vectors = np.concatenate([index.entries_of(videos[i]).vectors for i in chosen])
    shown = model.embed_texts(texts).float().numpy() @ shown_vectors.T
    said_scores = encoder.embed_queries(texts) @ np.asarray(said.vectors[rng.choice(len(said), size=min(
        4 * sample, len(said)), replace=False)], np.float32).T
    return Fusion(float(shown.mean()), float(shown.std()) or 1.0, float(said_scores.mean()),
                  float(said_scores.std()) or 1.0, DEFAULT_SAID_WEIGHT, DEFAULT_RULE, DEFAULT_SCALE,
                  DEFAULT_BOTH_FIRST)


def index_said(index_root: str | Path, features: str | Path, encoder_name: str = "auto",
               checkpoint: str | Path | None = None, device: str = "cpu",
               ids: Sequence[str] | None = None, warn=None) -> SaidIndex | None:
    """Embed the timed text of the indexed videos (``ids``) of ``features`` as said entries beside the index,
    with the default ranking settings (:func:`default_fusion`); None when there is nothing to embed or
    ``encoder_name`` is ``none`` (see :func:`~c2kd.search.said.said_encoder_for`). ``warn`` is called with one
    line per subtitle language the encoder does not know (:func:`~c2kd.search.said.unknown_languages`)."""
    from c2kd.data.features import store_root
    from c2kd.index import VideoIndex
    from c2kd.search.model import load_search_model
    from c2kd.search.said import build_said, said_encoder_for

    store = store_root(Path(features))
    encoder = said_encoder_for(encoder_name, store, checkpoint, device)
    if encoder is None:
        return None
    said = build_said(index_root, store, encoder, ids=ids)
    if said is None:
        return None
    warn_unknown_languages(said, encoder, store, warn)
    with VideoIndex.open(index_root) as index:
        if checkpoint is None:
            checkpoint = index.info["checkpoint"]
        fusion = default_fusion(index, said, load_search_model(checkpoint, device), encoder)
    record_fusion(index_root, fusion, "default: channels standardised by the indexed lines as sample queries")
    return SaidIndex.open(index_root)


def warn_unknown_languages(said: SaidIndex, encoder: SaidEncoder, store: str | Path, warn=None) -> list[str]:
    """Call ``warn`` with (and return) a line per language of the said entries the encoder does not know."""
    from c2kd.search.said import unknown_languages

    if encoder.known_languages is None:
        return []
    lines = unknown_languages(said, encoder.known_languages, str(store))
    for line in lines if warn is not None else ():
        warn(line)
    return lines


class ChannelSearch:
    """Answer queries by ``shown``, ``said`` or ``both`` channels, over a :class:`~c2kd.search.engine.SearchEngine`
    and the said entries beside its index."""

    def __init__(self, engine, said: SaidIndex | None, encoder: SaidEncoder | None = None) -> None:
        self.engine = engine
        self.said = said
        self.encoder = encoder if encoder is not None or said is None else SaidEncoder(said.encoder)
        self.fusion = read_fusion(said) if said is not None else Fusion()

    @classmethod
    def open(cls, engine) -> ChannelSearch:
        index = engine._require_index()
        return cls(engine, SaidIndex.open(index.root))

    def default_channel(self) -> str:
        return "both" if self.said is not None else "shown"

    def search(self, query: Query, k: int = 10, channel: str | None = None,
               filters: MetadataFilter | None = None) -> ChannelResponse:
        import time

        channel = check_channel(channel or self.default_channel())
        if channel != "shown" and self.said is None:
            raise DataError(f"--channel {channel}: this index has no said moments (its store held no subtitles or "
                            "speech when it was built); extract them (`c2kd extract`, `c2kd data subtitles`) and "
                            "rebuild the index, or search --channel shown")
        started = time.perf_counter()
        index = self.engine._require_index()
        wide = min(MAX_K, max(k * CANDIDATES, 50))
        shown_hits = index.search(self.engine.embed([query]), k=wide, filters=filters)[0]
        by_video = {h.video_id: h for h in shown_hits}
        said_scores: dict[str, float] = {}
        said_moments: dict[str, list] = {}
        if self.said is not None and self.encoder is not None and channel != "shown":
            for hit in self.said.search(self.encoder.embed_queries([query.text])[0], k=len(self.said.videos)):
                if hit.video_id in index and (not filters or hit.video_id in by_video):
                    said_scores[hit.video_id] = hit.score
                    said_moments[hit.video_id] = [(m.start, m.end, m.score, m.text) for m in hit.moments]
        shown_scores = {v: h.score for v, h in by_video.items()}
        ranked = fuse_videos(shown_scores, said_scores, self.fusion, channel, k)
        hits = []
        for rank, (vid, score, found_by) in enumerate(ranked, 1):
            shown = by_video.get(vid)
            spans = [(m.start, m.end, m.score) for m in shown.moments] if shown is not None else []
            moments = fuse_moments(spans, said_moments.get(vid, []), self.fusion, channel)
            metadata = shown.metadata if shown is not None else dict(index.metadata(vid))
            hits.append(ChannelHit(vid, score, rank, found_by, metadata, moments))
        return ChannelResponse(query, channel, hits, (time.perf_counter() - started) * 1000)

    def search_many(self, queries: Sequence[Query], k: int = 10, channel: str | None = None,
                    filters: MetadataFilter | None = None) -> list[ChannelResponse]:
        return [self.search(q, k, channel, filters) for q in queries]

    def moments(self, video_id: str, query: Query, k: int = 5, channel: str | None = None,
                lengths: Sequence[float] | None = None, iou_threshold: float = 0.5) -> ChannelMoments:
        """One video's moments of both kinds in one ranking: its shown moments (the engine's) and its said
        moments (its best lines), overlapping ones merged as found by both (:func:`fuse_moments`)."""
        import time

        from c2kd.search.query import validate_k

        channel = check_channel(channel or self.default_channel())
        k = validate_k(k)
        if channel != "shown" and (self.said is None or self.encoder is None):
            raise DataError(f"channel {channel}: this index has no said moments; search --channel shown")
        started = time.perf_counter()
        shown_spans: list[tuple[float, float, float]] = []
        duration = 0.0
        if channel != "said":
            extra = {} if lengths is None else {"lengths": lengths}
            shown = self.engine.moments(video_id, query.text, query.lang, k, iou_threshold=iou_threshold, **extra)
            shown_spans = [(m.start, m.end, m.score) for m in shown.moments]
            duration = shown.duration
        said_spans: list[tuple[float, float, float, str]] = []
        if channel != "shown" and self.said is not None and self.encoder is not None and video_id in self.said:
            scores = self.said.scores(self.encoder.embed_queries([query.text])[0])
            said_spans = [(m.start, m.end, m.score, m.text)
                          for m in self.said.moments_of(video_id, scores, k, iou_threshold)]
        elif channel == "said" and self.said is not None and video_id not in self.said:
            raise DataError(f"video {video_id!r} has no said moments (no subtitles or speech were indexed for it)")
        if not duration:
            index = self.engine.index
            meta = dict(index.metadata(video_id)) if index is not None and video_id in index else {}
            duration = float(meta.get("duration") or max((e for _, e, *_ in said_spans), default=0.0))
        found = fuse_moments(shown_spans, said_spans, self.fusion, channel, iou_threshold)[:k]
        return ChannelMoments(query, video_id, duration, channel, found, (time.perf_counter() - started) * 1000)


@dataclass
class ChannelMoments:
    """One video's moments for one query, each saying what found it (and, said, the line said there)."""

    query: Query
    video_id: str
    duration: float
    channel: str
    moments: list[FusedMoment]
    took_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query.text, "lang": self.query.lang, "video_id": self.video_id,
                "duration": round(self.duration, 3), "channel": self.channel, "took_ms": round(self.took_ms, 3),
                "moments": [m.to_dict() for m in self.moments]}


def video_moments(engine, video_id: str, text: str, lang: str | None = None, k: int = 5,
                  lengths: Sequence[float] | None = None, iou_threshold: float = 0.5, channel: str | None = None):
    """``c2kd moments`` and ``/api/moments`` on an indexed video: both kinds of moments when the index has said
    moments (:meth:`ChannelSearch.moments`), else the shown ones (the engine's
    :class:`~c2kd.search.engine.MomentsResponse`)."""
    if channel is not None:
        check_channel(channel)
    said = SaidIndex.open(engine.index.root) if engine.index is not None else None
    if said is None and channel in (None, "shown"):
        extra = {} if lengths is None else {"lengths": lengths}
        return engine.moments(video_id, text, lang, k, iou_threshold=iou_threshold, **extra)
    return ChannelSearch(engine, said).moments(video_id, Query.make(text, lang), k, channel, lengths, iou_threshold)
