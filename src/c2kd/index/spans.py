"""Scored stretches of a video (moments): found by peak and extent among its scored windows, with temporal
non-maximum suppression.

Low in the package so that the index can group its moment entries; :mod:`c2kd.search.moments` finds moments
from frame features with the same types.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Moment:
    """A scored stretch of video, in seconds (``end`` exclusive), with the feature rows it covers (-1: unknown)."""

    start: float
    end: float
    score: float
    first_row: int = -1
    last_row: int = -1  # exclusive
    rank: int = 0

    def to_dict(self) -> dict:
        return {"rank": self.rank, "start": round(self.start, 3), "end": round(self.end, 3),
                "score": self.score}


def temporal_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Intersection over union of two time intervals."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


#: how a moment's extent is chosen: among the windows that contain its peak (the best-scoring window), the one
#: of best cosine + LENGTH_PRIOR * log2(length in seconds), so that of a scene and one shot inside it that score
#: alike the whole scene is shown. Chosen on the validation split of ``bench/bench_long_video.py``; 0 shows the
#: peak itself. Videos rank by their peak's cosine.
LENGTH_PRIOR = 0.1


def length_adjusted(scores: np.ndarray, start: np.ndarray, end: np.ndarray, prior: float = LENGTH_PRIOR) -> np.ndarray:
    """Scores for choosing a moment's extent: ``scores + prior * log2(end - start)`` (seconds).

    Shape:
        scores, start, end [n] -> [n] float64
    """
    scores = np.asarray(scores, np.float64)
    if prior == 0:
        return scores
    return scores + prior * np.log2(np.maximum(np.asarray(end, np.float64) - np.asarray(start, np.float64), 1e-3))


def choose_moments(start: np.ndarray, end: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5,
                   top_k: int = 5, prior: float = LENGTH_PRIOR) -> list[tuple[int, int]]:
    """A video's best moments from its scored windows, as ``(extent, peak)`` window indices, best first.

    Each moment is found in two steps: its *peak* is the best remaining window by cosine (where the query
    matches), and its *extent* the window containing the peak with the best :func:`length_adjusted` score (how
    much around the peak belongs to it). The windows inside the extent, or overlapping it by more than
    ``iou_threshold``, are then set aside, and the next peak is looked for among the rest (so the moments
    overlap each other by at most ``iou_threshold``). Ties go to the earlier, then the shorter window.

    Shape:
        start, end, scores [n] -> at most top_k pairs
    """
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    scores = np.asarray(scores, np.float64)
    by_score = np.lexsort((end, start, -scores))
    adjusted = length_adjusted(scores, start, end, prior)
    by_adjusted = np.lexsort((end, start, -adjusted))
    rank_adjusted = np.empty(len(scores), np.int64)
    rank_adjusted[by_adjusted] = np.arange(len(scores))
    alive = np.ones(len(scores), bool)
    kept: list[tuple[int, int]] = []
    for peak in by_score:
        if len(kept) == top_k:
            break
        if not alive[peak]:
            continue
        holders = np.flatnonzero(alive & (start <= start[peak]) & (end >= end[peak]))
        extent = int(holders[np.argmin(rank_adjusted[holders])])
        lo, hi = start[extent], end[extent]
        inter = np.maximum(0.0, np.minimum(end, hi) - np.maximum(start, lo))
        union = np.maximum(end, hi) - np.minimum(start, lo)
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        alive &= (iou <= iou_threshold) & ~((start >= lo) & (end <= hi))
        alive[peak] = False
        kept.append((extent, int(peak)))
    return kept


def rank_moments(start: np.ndarray, end: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5,
                 top_k: int = 5, prior: float = LENGTH_PRIOR) -> tuple[Moment, ...]:
    """A video's windows as its best moments (:func:`choose_moments`), each spanning its extent and scored by
    its peak's cosine, ranked from 1.

    Shape:
        start, end, scores [n] -> at most top_k moments
    """
    return tuple(Moment(float(start[e]), float(end[e]), float(scores[p]), rank=rank)
                 for rank, (e, p) in enumerate(choose_moments(start, end, scores, iou_threshold, top_k, prior), 1))
