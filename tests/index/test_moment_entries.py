"""Moment entries (index format 2): windows, grouped search, filters, entry hits, round trips, float16 storage
and ``grouped_topk``, each checked against an independent plain-numpy / hand-computed reference."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from c2kd.errors import DataError
from c2kd.index import VideoIndex
from c2kd.index.exact import grouped_topk
from c2kd.index.segments import VideoEntries
from c2kd.index.spans import LENGTH_PRIOR
from c2kd.search.moments import Windows

#: milvus: Milvus Lite in the index folder (the Milvus engine), FLAT
BACKENDS = [("exact", {}), ("faiss", {"kind": "ivf", "nlist": 8, "nprobe": 8}),
            ("faiss", {"kind": "hnsw", "M": 16}), ("qdrant", {"location": ":memory:"}), ("milvus", {})]
BACKEND_IDS = ["exact", "faiss-ivf", "faiss-hnsw", "qdrant", "milvus"]
#: backends whose candidates are the exact top entries here (ivf probes every cell, local qdrant and milvus's
#: FLAT index scan all)
EXACT_CANDIDATES = {"exact", "faiss-ivf", "qdrant", "milvus"}

DIM = 24
HEAVY = (0, 2, 4)  # videos with 60 windows close to topic 0: they crowd the top entries of topic-0 queries
EntryHit = tuple[str, float, float, float, bool]  # video id, start, end, score, whole
HEAVY_SPREAD, SPREAD, QUERY_NOISE = 0.15, 0.8, 0.15


# -- the corpus and its references ---------------------------------------------------------------------------
@dataclass
class Corpus:
    ids: list[str]
    entries: list[VideoEntries]  # unit-norm vectors
    metadata: list[dict]
    queries: np.ndarray  # [Q, E] unit norm

    @property
    def vectors(self) -> np.ndarray:
        return np.concatenate([e.vectors for e in self.entries])

    @property
    def owner(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.ids)), [len(e) for e in self.entries])


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def moment_corpus(seed: int = 0, n_videos: int = 40, dim: int = DIM) -> Corpus:
    """Videos on 4 topics: every 8th one a whole clip, the others 1 to 60 windows (integer seconds, lengths
    4/8/16, distinct spans); the HEAVY videos have 60 windows tight around topic 0, where most queries are."""
    rng = np.random.default_rng(seed)
    topics = _unit(rng.standard_normal((4, dim)))
    spans = [(s, s + length) for s in range(0, 60, 2) for length in (4, 8, 16)]
    ids, entries, metadata = [], [], []
    for v in range(n_videos):
        topic = 0 if v % 2 == 0 else int(rng.integers(1, 4))
        spread = HEAVY_SPREAD if v in HEAVY else SPREAD
        if v % 8 == 7:
            vector = _unit(topics[topic] + spread * rng.standard_normal(dim) / math.sqrt(dim) * 3)
            entries.append(VideoEntries.clip(vector, duration=30.0))
        else:
            m = 60 if v in HEAVY else int(rng.integers(1, 61))
            pick = np.sort(rng.choice(len(spans), m, replace=False))
            noise = rng.standard_normal((m, dim)) / math.sqrt(dim) * 3
            vectors = _unit(topics[topic] + spread * noise)
            entries.append(VideoEntries(vectors, np.asarray([spans[i][0] for i in pick], np.float32),
                                        np.asarray([spans[i][1] for i in pick], np.float32)))
        ids.append(f"v{v:03d}")
        metadata.append({"split": "test" if v % 3 == 0 else "train", "topic": topic})
    near = _unit(topics[0] + QUERY_NOISE * rng.standard_normal((5, dim)) / math.sqrt(dim) * 3)
    other = _unit(topics[1:] + 0.3 * rng.standard_normal((3, dim)) / math.sqrt(dim) * 3)
    return Corpus(ids, entries, metadata, np.concatenate([near, other]))


def entry_scores(corpus: Corpus, query: np.ndarray) -> np.ndarray:
    return corpus.vectors.astype(np.float64) @ query.astype(np.float64)


def reference_videos(corpus: Corpus, query: np.ndarray, k: int, keep=None) -> list[tuple[str, float]]:
    """Score every entry, take each (kept) video's maximum, sort by (-score, video order), take k."""
    scores, owner = entry_scores(corpus, query), corpus.owner
    best = [(float(scores[owner == v].max()), v) for v in range(len(corpus.ids)) if keep is None or keep(v)]
    best.sort(key=lambda t: (-t[0], t[1]))
    return [(corpus.ids[v], s) for s, v in best[:k]]


def reference_entries(corpus: Corpus, query: np.ndarray, k: int) -> list[EntryHit]:
    """The top-k entries of the collection: (video id, start, end, score, whole), by (-score, entry order)."""
    scores, owner = entry_scores(corpus, query), corpus.owner
    start = np.concatenate([e.start for e in corpus.entries])
    end = np.concatenate([e.end for e in corpus.entries])
    whole = np.concatenate([[e.whole] * len(e) for e in corpus.entries])
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    return [(corpus.ids[owner[i]], float(start[i]), float(end[i]), float(scores[i]), bool(whole[i]))
            for i in order]


def reference_moments_of(starts, ends, scores, iou: float, top: int,
                         prior: float = 0.0) -> list[tuple[float, float, float]]:
    """Moments by peak and extent, in plain loops: the peak is the best remaining window by cosine (ties:
    earlier, then shorter), the extent the remaining window containing it with the best
    ``cosine + prior * log2(seconds)``; windows inside the extent or overlapping it by IoU > ``iou`` are set
    aside, and so on. Returns (extent start, extent end, peak cosine)."""
    def span_iou(i: int, j: int) -> float:
        inter = max(0.0, min(ends[i], ends[j]) - max(starts[i], starts[j]))
        union = max(ends[i], ends[j]) - min(starts[i], starts[j])
        return inter / union if union > 0 else 0.0

    remaining, out = set(range(len(scores))), []
    while remaining and len(out) < top:
        peak = min(remaining, key=lambda i: (-scores[i], starts[i], ends[i]))
        holders = [i for i in remaining if starts[i] <= starts[peak] and ends[i] >= ends[peak]]
        extent = min(holders, key=lambda i: (-(scores[i] + prior * math.log2(max(ends[i] - starts[i], 1e-3))),
                                             starts[i], ends[i]))
        out.append((float(starts[extent]), float(ends[extent]), float(scores[peak])))
        remaining = {i for i in remaining if i != peak and span_iou(i, extent) <= iou
                     and not (starts[i] >= starts[extent] and ends[i] <= ends[extent])}
    return out


def reference_moments(corpus: Corpus, video_id: str, query: np.ndarray, iou: float = 0.5, top: int = 3,
                      prior: float = LENGTH_PRIOR) -> list[tuple[float, float, float]]:
    e = corpus.entries[corpus.ids.index(video_id)]
    if e.whole:
        return []
    scores = e.vectors.astype(np.float64) @ query.astype(np.float64)
    return reference_moments_of(e.start.tolist(), e.end.tolist(), scores.tolist(), iou, top, prior)


def build(root, corpus: Corpus, backend: str = "exact", options=None, dtype: str = "float32") -> VideoIndex:
    index = VideoIndex.create(root, DIM, backend=backend, options=options, dtype=dtype)
    index.add_entries(corpus.ids, corpus.entries, corpus.metadata)
    return index


def assert_moments_equal(hit, expected: list[tuple[float, float, float]]) -> None:
    got = [(m.start, m.end) for m in hit.moments]
    assert got == [(s, e) for s, e, _ in expected], hit.video_id
    np.testing.assert_allclose([m.score for m in hit.moments], [s for _, _, s in expected], atol=1e-5)
    assert [m.rank for m in hit.moments] == list(range(1, len(expected) + 1))


def check_moments_valid(corpus: Corpus, hit, query: np.ndarray, iou: float, top: int) -> None:
    """Moments that are real windows of the video, each scored by the exact cosine of a window inside it and
    at least its own, best first, pairwise overlapping by at most ``iou``."""
    e = corpus.entries[corpus.ids.index(hit.video_id)]
    scores = e.vectors.astype(np.float64) @ query
    cosine = {(float(b), float(f)): float(s) for b, f, s in zip(e.start, e.end, scores)}
    assert 1 <= len(hit.moments) <= top
    for m in hit.moments:
        inside = [s for (b, f), s in cosine.items() if b >= m.start and f <= m.end]
        assert min(abs(m.score - s) for s in inside) < 1e-5
        assert m.score >= cosine[(m.start, m.end)] - 1e-5
    assert [m.score for m in hit.moments] == sorted((m.score for m in hit.moments), reverse=True)
    for i, a in enumerate(hit.moments):
        for b in hit.moments[:i]:
            inter = max(0.0, min(a.end, b.end) - max(a.start, b.start))
            assert inter / (max(a.end, b.end) - min(a.start, b.start)) <= iou
    assert [m.rank for m in hit.moments] == list(range(1, len(hit.moments) + 1))


def check_grouped(corpus: Corpus, hits_per_query, backend_id: str, k: int, keep=None, pooled: bool = False,
                  iou: float = 0.5, top: int = 3, prior: float = LENGTH_PRIOR) -> None:
    """Grouped hits against the brute-force reference (exact backends: identical; HNSW: recall and bounds).

    ``pooled``: the search went through an approximate backend's candidates, whose moments are chosen among
    the candidate entries only (else among all the video's entries, which must equal the reference exactly).
    """
    recalls = []
    for query, hits in zip(corpus.queries, hits_per_query):
        ref = reference_videos(corpus, query, k, keep)
        full = dict(reference_videos(corpus, query, len(corpus.ids), keep))
        got = [h.video_id for h in hits]
        assert len(set(got)) == len(got), "a video appears twice in grouped results"
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
        if keep is not None:
            assert all(keep(corpus.ids.index(v)) for v in got)
        if backend_id in EXACT_CANDIDATES:
            assert got == [r for r, _ in ref]
            np.testing.assert_allclose([h.score for h in hits], [s for _, s in ref], rtol=1e-5, atol=1e-5)
        else:
            recalls.append(len(set(got) & {r for r, _ in ref}) / max(1, len(ref)))
            for h in hits:  # an approximate hit scores as one of its entries (exactly): at most its best
                assert h.score <= full[h.video_id] + 1e-5
        for h in hits:
            expected = reference_moments(corpus, h.video_id, query, iou, top, prior)
            if not expected:
                assert h.moments == () and h.moment is None
                continue
            assert h.moment is not None
            assert h.moment.score == pytest.approx(h.score, abs=1e-5)  # its peak is the window the video ranks by
            if not pooled:
                assert_moments_equal(h, expected)
            elif prior == 0 and backend_id in EXACT_CANDIDATES:
                # the candidates are the exact top entries here: greedy NMS (by cosine) over the top-scored
                # entries is a prefix of NMS over all of them
                assert 1 <= len(h.moments) <= len(expected)
                assert_moments_equal(h, expected[:len(h.moments)])
            else:
                check_moments_valid(corpus, h, query, iou, top)
    if recalls:
        assert np.mean(recalls) >= 0.9, recalls


# -- 1. windows ----------------------------------------------------------------------------------------------
def test_windows_spans_by_hand():
    windows = Windows(lengths=(4, 8), stride=0.5, whole_up_to=0)
    by_hand = [(i, i + 4, float(i), float(i + 4)) for i in (0, 2, 4, 6, 8, 10, 12, 14, 16)]
    by_hand += [(i, i + 8, float(i), float(i + 8)) for i in (0, 4, 8, 12)]
    by_hand.sort()  # in time order (start, then end): the windows around one moment are stored together
    assert windows.spans(np.arange(20.0)) == by_hand
    assert Windows(lengths=(8, 4), stride=0.5, whole_up_to=0).spans(np.arange(20.0)) == by_hand  # any order
    # a 2 s step: 4 s = 2 rows (stride 1), 8 s = 4 rows (stride 2); a window ends one step after its last row
    two = [(i, i + 2, 2.0 * i, 2.0 * (i + 2)) for i in range(19)]
    two += [(i, i + 4, 2.0 * i, 2.0 * (i + 4)) for i in (0, 2, 4, 6, 8, 10, 12, 14, 16)]
    assert windows.spans(np.arange(0.0, 40.0, 2.0)) == sorted(two)
    # timestamps need not start at 0
    assert windows.spans(np.arange(20.0) + 100)[0] == (0, 4, 100.0, 104.0)
    # 9 rows: the last window of each length is aligned with the end
    assert windows.spans(np.arange(9.0)) == [(0, 4, 0.0, 4.0), (0, 8, 0.0, 8.0), (1, 9, 1.0, 9.0),
                                             (2, 6, 2.0, 6.0), (4, 8, 4.0, 8.0), (5, 9, 5.0, 9.0)]


def test_windows_short_videos_and_none():
    windows = Windows(lengths=(4, 8), stride=0.5, whole_up_to=0)
    assert windows.spans(np.arange(8.0)) is None  # exactly the longest window: one whole clip
    assert windows.spans(np.arange(0.0, 8.0, 2.0)) is None  # 4 rows of 2 s
    assert windows.spans(np.arange(5.0)) is None
    assert windows.spans(np.zeros(0)) is None
    assert windows.spans(np.array([3.0])) is None
    assert Windows(()).spans(np.arange(100.0)) is None
    assert Windows.from_dict(None) == Windows(())
    assert Windows.from_dict(windows.to_dict()) == windows
    # by default a clip of up to 32 s (a dataset clip) stays whole; a longer video is cut
    assert Windows((4, 8)).spans(np.arange(32.0)) is None
    assert Windows((4, 8)).spans(np.arange(33.0))[0] == (0, 4, 0.0, 4.0)
    with pytest.raises(DataError, match="longest whole clip"):
        Windows((4, 8), whole_up_to=-1)


@pytest.mark.parametrize("stride", [0, 1.5, float("nan"), -0.5, float("inf")])
def test_windows_invalid_stride(stride):
    with pytest.raises(DataError, match="stride"):
        Windows(lengths=(4, 8), stride=stride)


@pytest.mark.parametrize("lengths", [(0,), (-4, 8), (float("nan"),), (4, float("inf"))])
def test_windows_invalid_lengths(lengths):
    with pytest.raises(DataError, match="window lengths"):
        Windows(lengths=lengths)


def test_moments_by_peak_and_extent_by_hand():
    from c2kd.index.spans import rank_moments

    start = np.array([0, 0, 4, 8, 8], np.float32)
    end = np.array([4, 8, 8, 12, 16], np.float32)
    scores = np.array([0.9, 0.88, 0.5, 0.7, 0.6], np.float32)
    # peak [0, 4] (0.9); of the windows holding it [0, 8] wins with the prior (0.88 + 0.05 * 3 > 0.9 + 0.05 * 2),
    # which sets aside [0, 4] and [4, 8] inside it; then peak [8, 12]: itself (0.7 + 0.1 > 0.6 + 0.15); then
    # [8, 16], at IoU 0.5 with [8, 12] (not more than the threshold)
    got = [(m.start, m.end, round(m.score, 6), m.rank) for m in rank_moments(start, end, scores, 0.5, 5, 0.05)]
    assert got == [(0.0, 8.0, 0.9, 1), (8.0, 12.0, 0.7, 2), (8.0, 16.0, 0.6, 3)]
    # no prior: each peak is its own extent; a lower threshold drops [8, 16]
    got = [(m.start, m.end) for m in rank_moments(start, end, scores, 0.4, 5, 0.0)]
    assert got == [(0.0, 4.0), (8.0, 12.0), (4.0, 8.0)]
    assert rank_moments(start[:0], end[:0], scores[:0]) == ()


def test_first_per_group_by_hand():
    from c2kd.index.search import _first_per_group

    groups = np.array([3, 1, 3, 3, 1, 2, 3])
    assert _first_per_group(groups, 2).tolist() == [True, True, True, False, True, True, False]
    assert _first_per_group(groups, 1).tolist() == [True, True, False, False, False, True, False]
    assert _first_per_group(groups[:0], 3).tolist() == []


# -- 2. grouped search ---------------------------------------------------------------------------------------
def test_corpus_crowds_the_top_entries():
    """The corpus really is the hard case: the top 100 entries of a topic-0 query hold fewer than 10 videos,
    so "top-k entries, then group" would return too few videos."""
    corpus = moment_corpus()
    owner = corpus.owner
    for query in corpus.queries[:5]:
        top = np.argsort(-entry_scores(corpus, query))[:100]
        assert len(set(owner[top].tolist())) < 10
    assert sum(e.whole for e in corpus.entries) == 5 and max(len(e) for e in corpus.entries) == 60


@pytest.mark.parametrize("backend,options", BACKENDS, ids=BACKEND_IDS)
def test_grouped_search_matches_brute_force(tmp_path, backend, options):
    corpus = moment_corpus()
    backend_id = BACKEND_IDS[BACKENDS.index((backend, options))]
    with build(tmp_path / "idx", corpus, backend, options) as index:
        assert len(index) == 40 and index.entries == sum(len(e) for e in corpus.entries)
        for k in (1, 10, 45):  # 45: more than there are videos
            hits = index.search(corpus.queries, k=k)
            assert [len(h) for h in hits] == [min(k, 40)] * len(corpus.queries)
            check_grouped(corpus, hits, backend_id, k, pooled=backend != "exact")
            check_grouped(corpus, index.search(corpus.queries, k=k, length_prior=0.0), backend_id, k,
                          pooled=backend != "exact", prior=0.0)


def test_long_videos_through_an_approximate_backend(tmp_path, monkeypatch):
    """Videos of more windows than MOMENT_RESCORE_LIMIT: only their best candidates are re-scored, then the
    windows around them; with exact candidates (IVF probing every cell) the videos still match brute force."""
    import c2kd.index.search as search

    monkeypatch.setattr(search, "MOMENT_RESCORE_LIMIT", 8)
    corpus = moment_corpus()
    with build(tmp_path / "idx", corpus, "faiss", {"kind": "ivf", "nlist": 8, "nprobe": 8}) as index:
        for k in (1, 10):
            check_grouped(corpus, index.search(corpus.queries, k=k), "faiss-ivf", k, pooled=True)


def test_grouped_moments_options(tmp_path):
    corpus = moment_corpus()
    with build(tmp_path / "idx", corpus) as index:
        for moments, iou, prior in ((1, 0.5, 0.0), (5, 0.2, 0.0), (10, 0.9, 0.0), (0, 0.5, 0.0),
                                    (3, 0.5, 0.1), (5, 0.3, LENGTH_PRIOR), (4, 0.5, -0.05)):
            found = index.search(corpus.queries, k=10, moments=moments, iou=iou, length_prior=prior)
            for query, hits in zip(corpus.queries, found):
                for h in hits:
                    expected = reference_moments(corpus, h.video_id, query, iou, moments, prior)
                    expected = expected if moments else []
                    assert_moments_equal(h, expected)
        # the default ranks a video's windows with the length prior
        assert _summary(index.search(corpus.queries, k=10)) == _summary(
            index.search(corpus.queries, k=10, length_prior=LENGTH_PRIOR))


# -- 3. filters ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend,options", BACKENDS, ids=BACKEND_IDS)
def test_grouped_search_with_filters(tmp_path, monkeypatch, backend, options):
    import c2kd.index.search as search

    corpus = moment_corpus()
    backend_id = BACKEND_IDS[BACKENDS.index((backend, options))]
    cases = [({"split": "test"}, lambda v: corpus.metadata[v]["split"] == "test"),
             ({"split": "train", "topic": [0, 2]}, lambda v: corpus.metadata[v]["split"] == "train"
              and corpus.metadata[v]["topic"] in (0, 2)),
             ({"topic": 0}, lambda v: corpus.metadata[v]["topic"] == 0)]
    default = search.EXACT_SUBSET_LIMIT
    assert corpus.vectors.shape[0] <= default  # any filter leaves an exact subset by default
    with build(tmp_path / "idx", corpus, backend, options) as index:
        for path in ("exact-subset", "approximate"):
            # 10: every filter below leaves more entries than that, so approximate backends filter themselves
            monkeypatch.setattr(search, "EXACT_SUBSET_LIMIT", default if path == "exact-subset" else 10)
            # through the exact subset every backend is exact; beyond it, only the exact-candidate ones are
            effective = backend_id if path == "approximate" else "exact"
            for filters, keep in cases:
                for k in (3, 10):
                    hits = index.search(corpus.queries, k=k, filters=filters)
                    if effective != "faiss-hnsw":
                        assert all(len(h) == min(k, sum(map(keep, range(40)))) for h in hits), path
                    check_grouped(corpus, hits, effective, k, keep=keep, pooled=effective != "exact")
            assert index.search(corpus.queries[:2], k=5, filters={"split": "nope"}) == [[], []]


# -- 4. entries as hits --------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend,options", BACKENDS, ids=BACKEND_IDS)
def test_ungrouped_search_returns_top_entries(tmp_path, backend, options):
    corpus = moment_corpus()
    backend_id = BACKEND_IDS[BACKENDS.index((backend, options))]
    k = 25
    repeated = False
    with build(tmp_path / "idx", corpus, backend, options) as index:
        for query, hits in zip(corpus.queries, index.search(corpus.queries, k=k, group=False)):
            ref = reference_entries(corpus, query, k)
            got = [(h.video_id, h.moment.start if h.moment else None, h.moment.end if h.moment else None)
                   for h in hits]
            want = [(v, None if whole else s, None if whole else e) for v, s, e, _, whole in ref]
            assert [h.rank for h in hits] == list(range(1, k + 1))
            for h in hits:
                assert len(h.moments) == (0 if corpus.entries[corpus.ids.index(h.video_id)].whole else 1)
                if h.moment:
                    assert h.moment.score == pytest.approx(h.score, abs=1e-6)
            if backend_id in EXACT_CANDIDATES:
                assert got == want
                np.testing.assert_allclose([h.score for h in hits], [r[3] for r in ref], rtol=1e-5, atol=1e-5)
            else:
                assert len(set(got) & set(want)) >= 0.9 * k
            repeated |= len({h.video_id for h in hits}) < len(hits)
    assert repeated, "the corpus should make one video appear several times among the top entries"


# -- 5. changes and persistence ------------------------------------------------------------------------------
def _keys(index: VideoIndex, video_id: str) -> list[int]:
    """The entry keys of one video (internal: keys are not part of the public API)."""
    view = index._view
    return view.keys[view.video_entries(np.asarray([view.position[video_id]]))].tolist()


def _summary(hits_per_query):
    return [[(h.video_id, round(h.score, 5), tuple((m.start, m.end, round(m.score, 5)) for m in h.moments))
             for h in hits] for hits in hits_per_query]


@pytest.mark.parametrize("backend,options", BACKENDS, ids=BACKEND_IDS)
def test_add_remove_reopen_round_trip(tmp_path, backend, options):
    corpus = moment_corpus(seed=1, n_videos=24)
    backend_id = BACKEND_IDS[BACKENDS.index((backend, options))]
    # qdrant stays in memory (reopening re-uploads the stored entries): embedded on disk, it commits every
    # point to sqlite (~15 ms each); tests/index/test_index.py covers its on-disk persistence
    windowed = [i for i, e in enumerate(corpus.entries) if not e.whole]
    whole = [i for i, e in enumerate(corpus.entries) if e.whole]
    index = VideoIndex.create(tmp_path / "idx", DIM, backend=backend, options=options)
    index.add_entries([corpus.ids[i] for i in windowed], [corpus.entries[i] for i in windowed],
                      [corpus.metadata[i] for i in windowed])
    index.add([corpus.ids[i] for i in whole], np.stack([corpus.entries[i].vectors[0] for i in whole]),
              [{**corpus.metadata[i], "duration": 30.0} for i in whole])
    for i in whole:
        corpus.metadata[i]["duration"] = 30.0
    total = sum(len(e) for e in corpus.entries)
    assert index.entries == total and len(index) == 24
    for vid, e in zip(corpus.ids, corpus.entries):
        stored = index.entries_of(vid)
        np.testing.assert_allclose(stored.vectors, e.vectors, atol=1e-6)
        np.testing.assert_array_equal(stored.start, e.start)
        np.testing.assert_array_equal(stored.end, e.end)
        assert stored.whole == e.whole
    np.testing.assert_allclose(index.vector(corpus.ids[whole[0]]), corpus.entries[whole[0]].vectors[0],
                               atol=1e-6)
    assert index.entries_of(corpus.ids[whole[0]]).end.tolist() == [30.0]  # the duration from the metadata
    with pytest.raises(DataError, match="moments"):
        index.vector(corpus.ids[windowed[0]])
    keys = {vid: _keys(index, vid) for vid in corpus.ids}
    assert sorted(k for ks in keys.values() for k in ks) == list(range(total))

    gone = max(windowed, key=lambda i: len(corpus.entries[i]))  # in the first segment: it is rewritten
    gone_id = corpus.ids[gone]
    assert index.remove([gone_id]) == 1
    assert gone_id not in index and len(index) == 23
    assert index.entries == total - len(corpus.entries[gone])
    with pytest.raises(KeyError):
        index.entries_of(gone_id)
    for vid, e in zip(corpus.ids, corpus.entries):
        if vid != gone_id:
            assert _keys(index, vid) == keys[vid]
            np.testing.assert_allclose(index.entries_of(vid).vectors, e.vectors, atol=1e-6)
            np.testing.assert_array_equal(index.entries_of(vid).start, e.start)
    keep = [i for i in range(24) if i != gone]
    rest = Corpus([corpus.ids[i] for i in keep], [corpus.entries[i] for i in keep],
                  [corpus.metadata[i] for i in keep], corpus.queries)
    every = index.search(corpus.queries, k=30)
    assert all(gone_id not in {h.video_id for h in hits} for hits in every)
    assert all(gone_id not in {h.video_id for h in hits}
               for hits in index.search(corpus.queries, k=index.entries, group=False))
    check_grouped(rest, index.search(corpus.queries, k=10), backend_id, 10, pooled=backend != "exact")
    if backend_id in EXACT_CANDIDATES:
        assert all(len(hits) == 23 for hits in every)
    before = _summary(index.search(corpus.queries, k=10))
    before_entries = _summary(index.search(corpus.queries, k=20, group=False))
    index.close()

    with VideoIndex.open(tmp_path / "idx") as reopened:
        assert len(reopened) == 23 and reopened.entries == total - len(corpus.entries[gone])
        assert _summary(reopened.search(corpus.queries, k=10)) == before
        assert _summary(reopened.search(corpus.queries, k=20, group=False)) == before_entries
        assert all(_keys(reopened, vid) == keys[vid] for vid in rest.ids)
        assert reopened.metadata(corpus.ids[whole[0]]) == corpus.metadata[whole[0]]


def test_entries_are_validated(tmp_path):
    index = VideoIndex.create(tmp_path / "idx", DIM)
    good = _unit(np.ones((3, DIM)))
    times = np.asarray([0, 2, 4], np.float32), np.asarray([4, 6, 8], np.float32)
    bad_vectors = good.copy()
    bad_vectors[1, 3] = np.nan
    cases = [
        (VideoEntries(bad_vectors, *times), "NaN"),
        (VideoEntries(good, times[0], np.asarray([4, 1, 8], np.float32)), "end >= start"),
        (VideoEntries(good, times[0], np.asarray([4, np.nan, 8], np.float32)), "finite"),
        (VideoEntries(_unit(np.ones((3, DIM + 1))), *times), f"{DIM}-d"),
        (VideoEntries(good, times[0][:2], times[1]), "3 vectors"),
        (VideoEntries(np.zeros((0, DIM), np.float32), np.zeros(0), np.zeros(0)), "at least one"),
        (VideoEntries(np.zeros((3, DIM), np.float32), *times), "all zeros"),
    ]
    for entries, message in cases:
        with pytest.raises(DataError, match=message):
            index.add_entries(["ok", "bad"], [VideoEntries(good, *times), entries], [{}, {}])
        assert len(index) == 0 and index.entries == 0  # nothing of a refused add is kept
    with pytest.raises(DataError, match="entry sets"):
        index.add_entries(["a", "b"], [VideoEntries(good, *times)])
    assert index.add_entries(["ok"], [VideoEntries(good * 3, *times)]) == 1
    np.testing.assert_allclose(np.linalg.norm(index.entries_of("ok").vectors, axis=1), 1, atol=1e-6)


# -- 6. float16 storage --------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend,options", BACKENDS[:2], ids=BACKEND_IDS[:2])
def test_float16_storage(tmp_path, backend, options):
    corpus = moment_corpus(seed=2)
    rng = np.random.default_rng(5)
    # queries planted on windows of distinct videos: a clear winner (float16 error ~1e-3 cannot flip it)
    planted = [(v, int(rng.integers(len(corpus.entries[v])))) for v in (1, 6, 9, 12, 15, 33)]  # 15: whole
    corpus.queries = _unit(np.stack([corpus.entries[v].vectors[i] for v, i in planted])
                           + 0.05 * rng.standard_normal((len(planted), DIM)) / math.sqrt(DIM))
    index = build(tmp_path / "idx", corpus, backend, options, dtype="float16")
    assert index.dtype == "float16"
    stored = {np.load(p, mmap_mode="r").dtype for p in (tmp_path / "idx" / "segments").glob("*.npy")}
    assert stored == {np.dtype(np.float16)}
    for vid, e in zip(corpus.ids, corpus.entries):
        np.testing.assert_allclose(index.entries_of(vid).vectors, e.vectors, atol=2e-3)

    def check(ix: VideoIndex) -> None:
        found = ix.search(corpus.queries, k=10)
        for (v, _), query, hits in zip(planted, corpus.queries, found):
            ref = reference_videos(corpus, query, 10)
            assert hits[0].video_id == ref[0][0] == corpus.ids[v]
            full = dict(reference_videos(corpus, query, len(corpus.ids)))
            for h in hits:
                assert abs(h.score - full[h.video_id]) < 2e-3
                e = corpus.entries[corpus.ids.index(h.video_id)]
                cosine = {(float(b), float(f)): float(s)
                          for b, f, s in zip(e.start, e.end, e.vectors @ query)}
                for m in h.moments:  # scored by its peak: a window inside it
                    assert min(abs(m.score - c) for (b, f), c in cosine.items() if b >= m.start and f <= m.end) < 2e-3
                assert bool(h.moments) == (not e.whole)
            assert len({h.video_id for h in hits} & {r for r, _ in ref}) >= 9
        for (v, i), hits in zip(planted, ix.search(corpus.queries, k=1, length_prior=0.0)):
            e, best = corpus.entries[v], hits[0].moment  # by cosine alone, the planted window is the best
            if e.whole:
                assert best is None
            else:
                assert best is not None and (best.start, best.end) == (e.start[i], e.end[i])
        for query, hits in zip(corpus.queries, ix.search(corpus.queries, k=10, group=False)):
            ref = reference_entries(corpus, query, 10)
            assert abs(hits[0].score - ref[0][3]) < 2e-3 and hits[0].video_id == ref[0][0]
            np.testing.assert_allclose([h.score for h in hits], [r[3] for r in ref], atol=2e-3)

    check(index)
    index.remove([corpus.ids[0], corpus.ids[2]])  # rewrites the segment in float16
    for j in (2, 0):
        del corpus.ids[j], corpus.entries[j], corpus.metadata[j]
    planted = [(v - sum(j < v for j in (0, 2)), i) for v, i in planted]
    check(index)
    index.close()
    with VideoIndex.open(tmp_path / "idx") as reopened:
        assert reopened.dtype == "float16"
        check(reopened)


# -- 7. grouped_topk alone -----------------------------------------------------------------------------------
def reference_grouped_topk(vectors, queries, starts, k):
    ends = np.r_[starts[1:], len(vectors)]
    scores = queries.astype(np.float64) @ vectors.astype(np.float64).T  # [Q, N]
    best = np.stack([scores[:, a:b].max(axis=1) for a, b in zip(starts, ends)], axis=1)  # [Q, G]
    out_s, out_g = [], []
    for row in best:
        order = sorted(range(len(row)), key=lambda g: (-row[g], g))[:k]
        out_g.append(order)
        out_s.append(row[order])
    return np.asarray(out_s), np.asarray(out_g)


@pytest.mark.parametrize("chunk", [1, 3, 7, 1_000_000])
@pytest.mark.parametrize("k", [1, 5, 29, 30, 100])
def test_grouped_topk_matches_reference(chunk, k):
    rng = np.random.default_rng(chunk + k)
    sizes = rng.integers(1, 10, size=30)  # 30 groups of 1 to 9 rows: chunks of 3 and 7 split many of them
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    vectors = rng.standard_normal((int(sizes.sum()), 16)).astype(np.float32)
    queries = rng.standard_normal((4, 16)).astype(np.float32)
    scores, groups, every = grouped_topk(vectors, queries, starts, k, chunk=chunk)
    ref_s, ref_g = reference_grouped_topk(vectors, queries, starts, k)
    assert groups.shape == scores.shape == (4, min(k, 30)) and groups.dtype == np.int64
    np.testing.assert_array_equal(groups, ref_g)
    np.testing.assert_allclose(scores, ref_s, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(every, queries @ vectors.T, rtol=1e-5, atol=1e-5)  # every row's score too


def test_grouped_topk_edges():
    v = np.eye(4, dtype=np.float32)
    s, g, _ = grouped_topk(v, np.zeros((0, 4), np.float32), np.array([0, 2]), 3)
    assert s.shape == g.shape == (0, 0)
    s, g, _ = grouped_topk(np.zeros((0, 4), np.float32), v[:2], np.zeros(0, np.int64), 3)
    assert s.shape == g.shape == (2, 0)
    s, g, _ = grouped_topk(v, v[:1], np.array([0]), 5)  # one group holding everything
    assert g.tolist() == [[0]] and s.tolist() == [[1.0]]


def test_grouped_topk_breaks_ties_by_lower_group():
    # four one-row groups scoring 0, 0, 1, 1: the best single group is group 2 (tied with 3, lower index)
    vectors = np.array([[0.0], [0.0], [1.0], [1.0]], np.float32)
    _, groups, _ = grouped_topk(vectors, np.ones((1, 1), np.float32), np.arange(4), 1)
    assert groups.tolist() == [[2]]


# -- ties at the k-th place, and the moments of approximate backends -------------------------------------------
@pytest.mark.parametrize("group", [True, False])
def test_exact_index_breaks_ties_by_video_order(tmp_path, group):
    x = np.zeros((4, 4), np.float32)
    x[:, 0] = 1
    x[:2, 1] = -5  # videos a, b worse; c and d identical and best
    index = VideoIndex.create(tmp_path / "idx", 4)
    index.add(["a", "b", "c", "d"], x)
    assert [h.video_id for h in index.search(np.eye(4, dtype=np.float32)[0], k=1, group=group)[0]] == ["c"]


def _long_window_corpus(dim: int = 8) -> Corpus:
    """One video: 100 short (4 s) windows with cosine ~0.99 and one 32 s window at 0.98 holding the best of
    them, which the length prior makes the moment's extent (0.98 + 0.02 * 5 > 0.995 + 0.02 * 2), but which is
    not among the top 100 entries."""
    rng = np.random.default_rng(0)
    cos = np.r_[np.linspace(0.99, 0.995, 100), 0.98]
    side = _unit(rng.standard_normal((101, dim - 1)))
    vectors = np.concatenate([cos[:, None], np.sqrt(1 - cos[:, None] ** 2) * side], axis=1).astype(np.float32)
    start = np.r_[np.arange(0, 400, 4), 368].astype(np.float32)
    end = np.r_[np.arange(4, 404, 4), 400].astype(np.float32)
    return Corpus(["long"], [VideoEntries(vectors, start, end)], [{}], np.eye(dim, dtype=np.float32)[:1])


@pytest.mark.parametrize("backend,options", [
    BACKENDS[0],
    ("faiss", {"kind": "ivf", "nlist": 1, "nprobe": 1}),
    ("qdrant", {"location": ":memory:"}),
    ("milvus", {}),
], ids=["exact", "faiss-ivf-exhaustive", "qdrant", "milvus"])
def test_moments_do_not_depend_on_the_backend(tmp_path, backend, options):
    corpus = _long_window_corpus()
    with VideoIndex.create(tmp_path / "idx", 8, backend=backend, options=options) as index:
        index.add_entries(corpus.ids, corpus.entries, corpus.metadata)
        hit = index.search(corpus.queries, k=1, length_prior=0.02)[0][0]
        assert hit.score == pytest.approx(0.995, abs=1e-5)
        expected = reference_moments(corpus, "long", corpus.queries[0], prior=0.02)
        assert expected[0][:2] == (368.0, 400.0)
        assert_moments_equal(hit, expected)


def test_a_whole_clip_entry_is_one_vector(tmp_path):
    index = VideoIndex.create(tmp_path / "idx", 4)
    three = VideoEntries(_unit(np.ones((3, 4), np.float32)), np.zeros(3, np.float32), np.ones(3, np.float32), True)
    with pytest.raises(DataError, match="whole-clip entry is one vector"):
        index.add_entries(["v"], [three])
    assert len(index) == 0
