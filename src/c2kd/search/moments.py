"""Moment detection: which stretch of one video matches a text query best.

The per-second frame features of the video are cut into sliding windows of several lengths; the student's
video tower embeds each window as if it were a short clip, and each window is scored by cosine similarity with
the query. A moment is the best window (its peak) extended to the window around it that scores best with a
small bonus for length (:func:`c2kd.index.spans.choose_moments`); further moments overlap the better ones by at
most ``iou_threshold`` (temporal non-maximum suppression).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from c2kd.defaults import INDEX_LENGTHS, INDEX_STRIDE, WHOLE_UP_TO
from c2kd.errors import DataError
from c2kd.index.spans import Moment, choose_moments

DEFAULT_LENGTHS = (2.0, 4.0, 8.0, 16.0)


@dataclass(frozen=True)
class Windows:
    """How an index cuts long videos into moment entries (lengths in seconds, stride a fraction of each).

    A video no longer than ``whole_up_to`` seconds (nor than the longest window) stays one whole-clip entry;
    ``lengths=()`` keeps every video one entry.
    """

    lengths: tuple[float, ...] = INDEX_LENGTHS
    stride: float = INDEX_STRIDE
    whole_up_to: float = WHOLE_UP_TO

    def __post_init__(self) -> None:
        if self.lengths:
            check_lengths(self.lengths)
        if not (math.isfinite(self.stride) and 0 < self.stride <= 1):
            raise DataError(f"the moment stride must be a fraction of the window length in (0, 1], got {self.stride}")
        if not (math.isfinite(self.whole_up_to) and self.whole_up_to >= 0):
            raise DataError(f"the longest whole clip must be 0 or more seconds, got {self.whole_up_to}")

    def to_dict(self) -> dict:
        return {"lengths": list(self.lengths), "stride": self.stride, "whole_up_to": self.whole_up_to}

    @classmethod
    def from_dict(cls, data: dict | None) -> Windows:
        """The windows an index recorded; an index that records none holds whole clips only."""
        if not data:
            return cls(())
        return cls(tuple(float(x) for x in data.get("lengths", ())), float(data.get("stride", INDEX_STRIDE)),
                   float(data.get("whole_up_to", 0.0)))

    def spans(self, times: np.ndarray) -> list[tuple[int, int, float, float]] | None:
        """The windows of a video with these feature timestamps: ``(first row, last row (exclusive), start s,
        end s)``; None when the video is no longer than ``whole_up_to`` or the longest window (it stays one
        whole clip).

        Shape:
            times [T] seconds
        """
        times = np.asarray(times, np.float64)
        if not self.lengths or len(times) == 0:
            return None
        step = frame_step(times)
        if float(times[-1] + step) - float(times[0]) <= max(*self.lengths, self.whole_up_to) + 1e-6:
            return None
        rows = [max(1, int(round(seconds / step))) for seconds in self.lengths]
        windows = sorted(sliding_windows(len(times), rows, self.stride))  # in time order: neighbours stored together
        return [(i, j, float(times[i]), float(times[j - 1] + step)) for i, j in windows]


def frame_step(times: np.ndarray) -> float:
    """Seconds between consecutive feature rows (the median gap; 1.0 for a single row)."""
    times = np.asarray(times, np.float64)
    gaps = np.diff(times)
    gaps = gaps[gaps > 0]
    return float(np.median(gaps)) if len(gaps) else 1.0


def sliding_windows(n_rows: int, lengths: Sequence[int], stride_fraction: float = 0.25) -> list[tuple[int, int]]:
    """All windows ``[i, j)`` of the given lengths (in rows) with stride ``max(1, length * stride_fraction)``.

    The last window of each length is aligned with the end of the video, so no frame is left out; lengths
    longer than the video give one window over the whole video. Duplicates are removed; order is stable.
    """
    if n_rows <= 0:
        return []
    out: dict[tuple[int, int], None] = {}
    for length in sorted({max(1, min(int(n), n_rows)) for n in lengths}):
        stride = max(1, int(round(length * stride_fraction)))
        starts = list(range(0, n_rows - length + 1, stride))
        if starts[-1] != n_rows - length:
            starts.append(n_rows - length)
        for i in starts:
            out[(i, i + length)] = None
    return list(out)


def score_windows(model, features: np.ndarray, windows: Sequence[tuple[int, int]], query: np.ndarray,
                  batch_size: int = 256) -> np.ndarray:
    """Cosine similarity between a query embedding and the video tower's embedding of each window.

    Shape:
        features [T, F], windows W pairs, query [E] -> scores [W] float32
    """
    clips = [np.asarray(features[i:j]) for i, j in windows]
    embeddings = model.embed_videos(clips, batch_size=batch_size).numpy()  # [W, E]
    return (embeddings @ np.asarray(query, np.float32).reshape(-1)).astype(np.float32)


def check_lengths(lengths: Sequence[float]) -> None:
    """Window lengths must be positive, finite seconds (NaN or inf would make every window the same)."""
    if not lengths or not all(math.isfinite(x) and x > 0 for x in lengths):
        raise DataError(f"window lengths must be positive, finite seconds, e.g. 2,4,8; got {list(lengths)}")


def find_moments(model, features: np.ndarray, times: np.ndarray | None, query: np.ndarray,
                 lengths: Sequence[float] = DEFAULT_LENGTHS, stride_fraction: float = 0.25,
                 iou_threshold: float = 0.5, top_k: int = 5) -> list[Moment]:
    """Ranked moments of one video for one query embedding.

    ``lengths`` are window lengths in seconds (converted to rows with the feature timestamps).

    Shape:
        features [T, F] (per-second rows), times [T] seconds or None (= 0, 1, 2, ...), query [E] unit norm
    """
    features = np.asarray(features)
    if features.ndim != 2 or len(features) == 0:
        raise DataError(f"moment detection needs [T, F] frame features with T >= 1, got shape {features.shape}")
    times = np.arange(len(features), dtype=np.float64) if times is None or len(times) == 0 else np.asarray(times,
                                                                                                            np.float64)
    if len(times) != len(features):
        raise DataError(f"{len(times)} timestamps for {len(features)} feature rows")
    check_lengths(lengths)
    step = frame_step(times)
    rows = [max(1, int(round(seconds / step))) for seconds in lengths]
    windows = sliding_windows(len(features), rows, stride_fraction)
    scores = score_windows(model, features, windows, query)
    first, last = np.array([i for i, _ in windows]), np.array([j for _, j in windows])
    start, end = times[first], times[last - 1] + step
    return [Moment(float(start[e]), float(end[e]), float(scores[p]), int(first[e]), int(last[e]), rank)
            for rank, (e, p) in enumerate(choose_moments(start, end, scores, iou_threshold, top_k), 1)]


def best_moments(model, videos: Sequence[tuple[np.ndarray, np.ndarray | None]], query: np.ndarray,
                 lengths: Sequence[float] = DEFAULT_LENGTHS, stride_fraction: float = 0.5) -> list[Moment]:
    """The single best window of each of several videos, with one batched pass of the video tower.

    Used to start each search result's playback at its matching moment.

    Shape:
        videos: N pairs (features [T_i, F], times [T_i] or None), query [E] -> N moments
    """
    check_lengths(lengths)
    jobs: list[tuple[int, int, int]] = []  # (video, first row, last row)
    steps = []
    for v, (features, times) in enumerate(videos):
        t = np.arange(len(features), dtype=np.float64) if times is None or len(times) == 0 else np.asarray(times)
        step = frame_step(t)
        steps.append((t, step))
        rows = [max(1, int(round(seconds / step))) for seconds in lengths]
        jobs.extend((v, i, j) for i, j in sliding_windows(len(features), rows, stride_fraction))
    if not jobs:
        return []
    clips = [np.asarray(videos[v][0][i:j]) for v, i, j in jobs]
    scores = model.embed_videos(clips).numpy() @ np.asarray(query, np.float32).reshape(-1)
    best: dict[int, Moment] = {}
    for (v, i, j), s in zip(jobs, scores):
        if v not in best or s > best[v].score:
            t, step = steps[v]
            best[v] = Moment(float(t[i]), float(t[j - 1] + step), float(s), i, j, 1)
    return [best[v] for v in range(len(videos))]
