"""Scored stretches of a video (moments) and temporal non-maximum suppression.

Low in the package so that the index can group its moment entries; :mod:`c2kd.search.moments` finds moments
from frame features with the same types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

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


#: the moments shown for a video rank its windows by cosine + LENGTH_PRIOR * log2(length in seconds): of a
#: scene and one shot inside it that score alike, the whole scene is shown. Chosen on the validation split of
#: ``bench/bench_long_video.py``; 0 ranks by cosine alone. Videos still rank by their best window's cosine.
LENGTH_PRIOR = 0.05


def length_adjusted(scores: np.ndarray, start: np.ndarray, end: np.ndarray, prior: float = LENGTH_PRIOR) -> np.ndarray:
    """Scores for choosing among a video's windows: ``scores + prior * log2(end - start)`` (seconds).

    Shape:
        scores, start, end [n] -> [n] float64
    """
    scores = np.asarray(scores, np.float64)
    if prior == 0:
        return scores
    return scores + prior * np.log2(np.maximum(np.asarray(end, np.float64) - np.asarray(start, np.float64), 1e-3))


def suppress(start: np.ndarray, end: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5,
             top_k: int = 5) -> list[int]:
    """Temporal non-maximum suppression on arrays: the indices of the kept spans, best first.

    A span is kept when it overlaps every better kept span by at most ``iou_threshold``; ties in score go to
    the earlier, then the shorter span. Stops after ``top_k`` (only the spans looked at cost Python time).

    Shape:
        start, end, scores [n] -> at most top_k indices
    """
    order = np.lexsort((np.asarray(end), np.asarray(start), -np.asarray(scores, np.float64)))
    kept: list[int] = []
    for i in order:
        span = (float(start[i]), float(end[i]))
        if all(temporal_iou(span, (float(start[j]), float(end[j]))) <= iou_threshold for j in kept):
            kept.append(int(i))
            if len(kept) == top_k:
                break
    return kept


def non_maximum_suppression(moments: Sequence[Moment], iou_threshold: float = 0.5, top_k: int = 5) -> list[Moment]:
    """Keep the best moments, dropping any that overlaps a better kept one by more than ``iou_threshold``.

    Ties in score go to the earlier, then the shorter moment; the kept moments are ranked from 1.
    """
    if not moments:
        return []
    kept = suppress(np.asarray([m.start for m in moments]), np.asarray([m.end for m in moments]),
                    np.asarray([m.score for m in moments]), iou_threshold, top_k)
    return [replace(moments[i], rank=rank) for rank, i in enumerate(kept, 1)]


def rank_moments(start: np.ndarray, end: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5,
                 top_k: int = 5, prior: float = LENGTH_PRIOR) -> tuple[Moment, ...]:
    """A video's windows as its best moments: ranked by cosine + ``prior`` log2(length), reduced by temporal
    NMS, each reporting its own cosine.

    Shape:
        start, end, scores [n] -> at most top_k moments, ranked from 1
    """
    kept = suppress(start, end, length_adjusted(scores, start, end, prior), iou_threshold, top_k)
    return tuple(Moment(float(start[i]), float(end[i]), float(scores[i]), rank=rank) for rank, i in enumerate(kept, 1))
