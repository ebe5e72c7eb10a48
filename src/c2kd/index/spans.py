"""Scored stretches of a video (moments) and temporal non-maximum suppression.

Low in the package so that the index can group its moment entries; :mod:`c2kd.search.moments` finds moments
from frame features with the same types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


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


def non_maximum_suppression(moments: Sequence[Moment], iou_threshold: float = 0.5, top_k: int = 5) -> list[Moment]:
    """Keep the best moments, dropping any that overlaps a better kept one by more than ``iou_threshold``.

    Ties in score go to the earlier, then the shorter moment; the kept moments are ranked from 1.
    """
    kept: list[Moment] = []
    for m in sorted(moments, key=lambda m: (-m.score, m.start, m.end)):
        if all(temporal_iou((m.start, m.end), (k.start, k.end)) <= iou_threshold for k in kept):
            kept.append(m)
            if len(kept) == top_k:
                break
    return [Moment(m.start, m.end, m.score, m.first_row, m.last_row, rank) for rank, m in enumerate(kept, 1)]
