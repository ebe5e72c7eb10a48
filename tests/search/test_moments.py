"""Moment detection: windows, suppression of overlaps, scores against a per-window reference, and a planted best segment."""

from __future__ import annotations

import numpy as np
import pytest

from c2kd.checkpoint import load_checkpoint
from c2kd.data.features import FeatureStore
from c2kd.index.spans import rank_moments, temporal_iou
from c2kd.search.moments import find_moments, frame_step, sliding_windows
from c2kd.search.windows import Timeline, Windows


def test_sliding_windows_cover_every_row():
    windows = sliding_windows(10, [4], stride_fraction=0.5)
    assert windows == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert sliding_windows(7, [4], 0.5) == [(0, 4), (2, 6), (3, 7)]  # last window aligned with the end
    assert sliding_windows(3, [8, 16]) == [(0, 3)]  # longer than the video: the whole video once
    assert sliding_windows(0, [2]) == []
    for n in (1, 5, 13):
        for length in (1, 2, 3, 7):
            covered = set()
            for i, j in sliding_windows(n, [length], 0.25):
                assert 0 <= i < j <= n and j - i == min(length, n)
                covered.update(range(i, j))
            assert covered == set(range(n))


def test_temporal_iou_and_suppression_by_hand():
    assert temporal_iou((0, 4), (2, 6)) == pytest.approx(2 / 6)
    assert temporal_iou((0, 2), (2, 4)) == 0.0
    assert temporal_iou((1, 3), (1, 3)) == 1.0
    start, end = np.array([0, 1, 2, 8, 3], float), np.array([4, 5, 6, 10, 7], float)
    scores = np.array([0.9, 0.8, 0.7, 0.5, 0.6])
    kept = rank_moments(start, end, scores, iou_threshold=0.5, top_k=5, prior=0.0)  # each peak its own extent
    # (1,5) overlaps (0,4) by 3/5 > 0.5: dropped; (2,6) by 2/6: kept; (3,7) overlaps (2,6) by 3/5: dropped
    assert [(m.start, m.end) for m in kept] == [(0, 4), (2, 6), (8, 10)]
    assert [m.rank for m in kept] == [1, 2, 3] and [m.score for m in kept] == [0.9, 0.7, 0.5]
    assert len(rank_moments(start, end, scores, 0.5, top_k=1, prior=0.0)) == 1
    assert [(m.start, m.end) for m in rank_moments(start, end, scores, 0.0, 5, prior=0.0)] == [(0, 4), (8, 10)]


def test_frame_step():
    assert frame_step(np.array([0.0, 0.5, 1.0, 1.5])) == 0.5
    assert frame_step(np.array([3.0])) == 1.0


def test_scores_equal_embedding_each_window_alone(random_checkpoint, synthetic_data):
    model, _ = load_checkpoint(random_checkpoint)
    model.eval()
    store = FeatureStore(synthetic_data / "features")
    vid = max(store.ids, key=lambda v: len(store[v]))
    feats, times = np.asarray(store[vid]), store.times(vid)
    query = model.embed_texts(["a dog runs in the park"])[0].numpy()
    moments = find_moments(model, feats, times, query, Windows((2, 5), 0.25), iou_threshold=0.99, top_k=1000)
    windows = sliding_windows(len(feats), [2, 5], 0.25)
    alone = {(i, j): float(model.embed_videos([feats[i:j]])[0].numpy() @ query) for i, j in windows}
    assert moments[0].score == pytest.approx(max(alone.values()), abs=1e-5)  # the first peak is the best window
    for m in moments:  # each scored by its peak: a window inside it, embedded alone
        assert (m.first_row, m.last_row) in alone
        inside = [s for (i, j), s in alone.items() if i >= m.first_row and j <= m.last_row]
        assert min(abs(m.score - s) for s in inside) < 1e-5
        assert m.start == pytest.approx(times[m.first_row]) and m.end == pytest.approx(times[m.last_row - 1] + 1)
    assert [m.score for m in moments] == sorted((m.score for m in moments), reverse=True)


def _concepts(text: str) -> set[str]:
    from c2kd.data.synthetic import ACTIONS, OBJECTS, PLACES

    return set(text.split()) & set(OBJECTS + ACTIONS + PLACES)


def test_planted_segment_is_found(trained_checkpoint, synthetic_data, captions):
    """A test video is spliced between two unrelated ones; its caption must find it (start and end)."""
    model, _ = load_checkpoint(trained_checkpoint)
    model.eval()
    store = FeatureStore(synthetic_data / "features")
    english = {}
    for vid, split, lang, idx, text in zip(captions["video_id"], captions["split"], captions["lang"],
                                           captions["caption_index"], captions["text"]):
        if split == "test" and lang == "en" and idx == 0:
            english[vid] = text
    found_any = 0
    tried = 0
    for target in sorted(english):
        concepts = _concepts(english[target])
        others = [v for v in sorted(english) if not _concepts(english[v]) & concepts]
        if len(concepts) < 3 or len(others) < 2 or len(store[target]) < 8:
            continue
        before, after = others[0], others[1]
        feats = np.concatenate([store[before], store[target], store[after]]).astype(np.float32)
        start, end = len(store[before]), len(store[before]) + len(store[target])
        query = model.embed_texts([english[target]])[0].numpy()
        best = find_moments(model, feats, None, query, Windows((4, 8, 12, 16), 0.25), top_k=3)[0]
        tried += 1
        found_any += temporal_iou((best.start, best.end), (start, end)) >= 0.5
        if tried == 6:
            break
    assert tried == 6
    assert found_any >= 5, f"the planted segment was found in {found_any} of {tried} spliced videos"


@pytest.mark.parametrize("lengths", [[float("nan")], [2.0, float("inf")], [0.0], []])
def test_window_lengths_must_be_positive_finite_seconds(lengths):
    from c2kd.errors import DataError
    from c2kd.search.moments import best_moments

    features = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    with pytest.raises(DataError, match="positive, finite"):
        find_moments(None, features, None, np.ones(4, np.float32), Windows(tuple(lengths)))
    with pytest.raises(DataError, match="positive, finite"):
        best_moments(None, [(features, None)], np.ones(4, np.float32), Windows(tuple(lengths)))


def test_a_file_and_an_index_cut_the_same_windows(random_checkpoint):
    """One window spec: the moments of a file (find_moments, default windows) are windows the index cuts for the
    same video (Windows.spans), in the same seconds; and the moments command and the HTTP API default to them."""
    import inspect

    from c2kd.defaults import INDEX_LENGTHS, INDEX_STRIDE
    from c2kd.serve.app import MomentsBody

    model, _ = load_checkpoint(random_checkpoint)
    model.eval()
    rng = np.random.default_rng(0)
    times = np.arange(0, 40, 0.5)  # 80 rows two per second: window rows are seconds / 0.5
    feats = rng.normal(size=(len(times), model.feature_dim)).astype(np.float32)
    query = model.embed_texts(["a dog runs in the park"])[0].numpy()
    indexed = {(i, j): (s, e) for i, j, s, e in Windows().spans(Timeline.of(times))}
    assert {j - i for i, j in indexed} == {4, 8, 16}  # 2, 4 and 8 s
    assert (2, 6) in indexed and (1, 5) not in indexed  # stride half a length
    found = find_moments(model, feats, times, query, iou_threshold=0.99, top_k=1000)
    assert len(found) >= 5
    for m in found:
        assert indexed[(m.first_row, m.last_row)] == (m.start, m.end)
    assert (Windows().lengths, Windows().stride) == (INDEX_LENGTHS, INDEX_STRIDE) == ((2.0, 4.0, 8.0), 0.5)
    assert tuple(MomentsBody(video_id="v", query="q").lengths) == INDEX_LENGTHS
    from c2kd.commands.search import moments

    assert inspect.signature(moments).parameters["lengths"].default.default == "2,4,8"


def test_timeline_by_hand():
    t = Timeline.of(np.array([10.0, 10.5, 11.0, 12.0]))
    assert t.step == 0.5 and t.duration == 12.5 and t.extent == 2.5
    assert t.rows(2.0) == 4 and t.rows(0.1) == 1 and t.span(1, 3) == (10.5, 11.5)
    none = Timeline.of(None, 3)
    assert list(none.times) == [0.0, 1.0, 2.0] and none.duration == 3.0 and Timeline.of(None).duration == 0.0


def test_a_known_length_ends_the_timeline_and_every_window_of_it(random_checkpoint):
    """A 50.07 s video sampled at 1 frame/s has rows at 0..50 s: it is 50.07 s long, not 51, and no window (of
    the index, of a file's moments, of a result's best moment) ends after 50.07 s."""
    from c2kd.search.moments import best_moments

    times = np.arange(51, dtype=np.float64)
    t = Timeline.of(times, end=50.07)
    assert t.duration == 50.07 and t.extent == 50.07 and t.span(49, 51) == (49.0, 50.07) and t.span(0, 2) == (0, 2)
    assert Timeline.of(times).duration == 51.0  # unknown: where the last row ends, as before
    assert Timeline.of(times, end=49.5).duration == 51.0  # a length before the last row's start is not believed
    spans = Windows((4.0, 8.0), 0.5).spans(t)
    assert spans is not None and max(e for *_, e in spans) == 50.07 and all(s < e <= 50.07 for _, _, s, e in spans)
    model, _ = load_checkpoint(random_checkpoint)
    model.eval()
    feats = np.random.default_rng(0).normal(size=(51, model.feature_dim)).astype(np.float32)
    query = model.embed_texts(["a dog runs in the park"])[0].numpy()
    found = find_moments(model, feats, times, query, Windows((4.0,), 0.5), iou_threshold=0.99, top_k=1000,
                         end=50.07)
    assert max(m.end for m in found) == pytest.approx(50.07) and all(m.end <= 50.07 for m in found)
    (best,) = best_moments(model, [(feats[-4:], times[-4:])], query, Windows((4.0,), 0.5), ends=[50.07])
    assert (best.start, best.end) == (47.0, pytest.approx(50.07))
