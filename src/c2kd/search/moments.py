"""Moment detection: which stretch of one video matches a text query best.

The per-second frame features of the video are cut into sliding windows (:class:`c2kd.search.windows.Windows`,
the same spec as an index's moment entries); the student's video tower embeds each window as if it were a
short clip, and each window is scored by cosine similarity with the query. A moment is the best window (its
peak) extended to the window around it that scores best with a small bonus for length
(:func:`c2kd.index.spans.choose_moments`); further moments overlap the better ones by at most ``iou_threshold``
(temporal non-maximum suppression).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from c2kd.errors import DataError
from c2kd.index.spans import Moment, choose_moments
from c2kd.search.windows import Timeline, Windows, check_lengths, frame_step, sliding_windows

__all__ = ["Moment", "Timeline", "Windows", "best_moments", "check_lengths", "find_moments", "frame_step",
           "score_windows", "sliding_windows"]


def score_windows(model, features: np.ndarray, windows: Sequence[tuple[int, int]], query: np.ndarray,
                  batch_size: int = 256) -> np.ndarray:
    """Cosine similarity between a query embedding and the video tower's embedding of each window.

    Shape:
        features [T, F], windows W pairs, query [E] -> scores [W] float32
    """
    clips = [np.asarray(features[i:j]) for i, j in windows]
    embeddings = model.embed_videos(clips, batch_size=batch_size).numpy()  # [W, E]
    return (embeddings @ np.asarray(query, np.float32).reshape(-1)).astype(np.float32)


def find_moments(model, features: np.ndarray, times: np.ndarray | None, query: np.ndarray,
                 windows: Windows | None = None, iou_threshold: float = 0.5, top_k: int = 5,
                 end: float | None = None) -> list[Moment]:
    """Ranked moments of one video for one query embedding, over the ``windows`` it is cut into (default:
    :class:`~c2kd.search.windows.Windows`, the windows of an index); none ends after ``end``, the video's length
    in seconds when known.

    Shape:
        features [T, F] (per-second rows), times [T] seconds or None (= 0, 1, 2, ...), query [E] unit norm
    """
    windows = windows if windows is not None else Windows()
    features = np.asarray(features)
    if features.ndim != 2 or len(features) == 0:
        raise DataError(f"moment detection needs [T, F] frame features with T >= 1, got shape {features.shape}")
    if times is not None and len(times) and len(times) != len(features):
        raise DataError(f"{len(times)} timestamps for {len(features)} feature rows")
    timeline = Timeline.of(times, len(features), end)
    cut = windows.cut(timeline)
    scores = score_windows(model, features, cut, query)
    spans = np.asarray([timeline.span(i, j) for i, j in cut], np.float64)
    starts, ends = spans[:, 0], spans[:, 1]
    return [Moment(float(starts[e]), float(ends[e]), float(scores[p]), cut[e][0], cut[e][1], rank)
            for rank, (e, p) in enumerate(choose_moments(starts, ends, scores, iou_threshold, top_k), 1)]


def best_moments(model, videos: Sequence[tuple[np.ndarray, np.ndarray | None]], query: np.ndarray,
                 windows: Windows | None = None, ends: Sequence[float | None] | None = None) -> list[Moment]:
    """The single best window of each of several videos, with one batched pass of the video tower; ``ends``:
    each video's length in seconds when known (no window ends after it).

    Used to start each search result's playback at its matching moment.

    Shape:
        videos: N pairs (features [T_i, F], times [T_i] or None), query [E] -> N moments
    """
    windows = windows if windows is not None else Windows()
    check_lengths(windows.lengths)
    jobs: list[tuple[int, int, int]] = []  # (video, first row, last row)
    timelines = []
    for v, (features, times) in enumerate(videos):
        timeline = Timeline.of(times, len(features), None if ends is None else ends[v])
        timelines.append(timeline)
        jobs.extend((v, i, j) for i, j in windows.cut(timeline))
    if not jobs:
        return []
    clips = [np.asarray(videos[v][0][i:j]) for v, i, j in jobs]
    scores = model.embed_videos(clips).numpy() @ np.asarray(query, np.float32).reshape(-1)
    best: dict[int, Moment] = {}
    for (v, i, j), s in zip(jobs, scores):
        if v not in best or s > best[v].score:
            best[v] = Moment(*timelines[v].span(i, j), float(s), i, j, 1)
    return [best[v] for v in range(len(videos))]
