"""One rule that ranks videos and moments by what is shown (frames) and what is said (timed text).

The two channels' scores are cosines of different encoders, not on one scale. Each channel's scores are first
standardised with statistics learned on validation queries (``z = (s - mean) / std`` over all the channel's
query-entry scores), then combined with a weight learned on the same queries::

    fused = (1 - w) * z_shown + w * z_said

A video (or moment) that one channel cannot score (a video without timed text; a shown moment where nothing is
said) gets 0 from it, the channel's average: no evidence either way. So a scene nobody speaks in still ranks by
its picture, and of two candidates that one channel scores alike, the one the other channel also finds (above
its average) ranks first. A shown moment and a said moment of a video that overlap (IoU >= 0.5) are one moment found by
both, spanning both. ``channel="shown"`` or ``"said"`` ranks by that channel alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from c2kd.errors import DataError
from c2kd.index.spans import temporal_iou

CHANNELS = ("shown", "said", "both")
#: the weights of the said channel tried by :func:`calibrate`
WEIGHTS = tuple(round(w, 2) for w in np.linspace(0.0, 1.0, 21))


@dataclass(frozen=True)
class Fusion:
    """Per-channel standardisation and the said channel's weight (see the module)."""

    shown_mean: float = 0.0
    shown_std: float = 1.0
    said_mean: float = 0.0
    said_std: float = 1.0
    said_weight: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping | None) -> Fusion:
        return cls(**{k: float(v) for k, v in (data or {}).items() if k in cls.__dataclass_fields__})

    def z(self, channel: str, scores):
        """Standardised scores of one channel."""
        if channel == "shown":
            return (np.asarray(scores, np.float64) - self.shown_mean) / self.shown_std
        return (np.asarray(scores, np.float64) - self.said_mean) / self.said_std


@dataclass(frozen=True)
class FusedMoment:
    """A moment ranked by both channels: its span, fused score, what found it and the line(s) said there."""

    start: float
    end: float
    score: float
    found_by: str
    text: str = ""
    rank: int = 0

    def to_dict(self) -> dict:
        return {"rank": self.rank, "start": round(self.start, 3), "end": round(self.end, 3), "score": self.score,
                "found_by": self.found_by, "text": self.text or None}


def check_channel(channel: str) -> str:
    if channel not in CHANNELS:
        raise DataError(f"unknown channel {channel!r}; use shown (the pictures), said (subtitles and speech) or both")
    return channel


def _combine(fusion: Fusion, shown: np.ndarray, said: np.ndarray, channel: str) -> np.ndarray:
    """Fused scores of candidates from raw channel scores (NaN: not found by that channel).

    Shape:
        shown, said [n] -> [n] float64 (-inf for a candidate the chosen channel did not find)
    """
    z_shown, z_said = fusion.z("shown", shown), fusion.z("said", said)
    if channel == "shown":
        return np.where(np.isnan(z_shown), -np.inf, z_shown)
    if channel == "said":
        return np.where(np.isnan(z_said), -np.inf, z_said)
    z_shown = np.where(np.isnan(z_shown), 0.0, z_shown)
    z_said = np.where(np.isnan(z_said), 0.0, z_said)
    return (1.0 - fusion.said_weight) * z_shown + fusion.said_weight * z_said


def fuse_videos(shown: Mapping[str, float], said: Mapping[str, float], fusion: Fusion, channel: str = "both",
                k: int | None = None) -> list[tuple[str, float, str]]:
    """Videos ranked by the rule: (video id, fused score, found by ``shown``/``said``/``both``), best first."""
    check_channel(channel)
    ids = list(dict.fromkeys([*shown, *said]))
    a = np.array([shown.get(v, np.nan) for v in ids], np.float64)
    b = np.array([said.get(v, np.nan) for v in ids], np.float64)
    fused = _combine(fusion, a, b, channel)
    order = [i for i in np.lexsort((np.arange(len(ids)), -fused)) if np.isfinite(fused[i])]
    found = [channel if channel != "both" else "both" if v in shown and v in said else
             ("shown" if v in shown else "said") for v in ids]
    return [(ids[i], float(fused[i]), found[i]) for i in order[:k]]


def fuse_moments(shown: Sequence[tuple[float, float, float]], said: Sequence[tuple[float, float, float, str]],
                 fusion: Fusion, channel: str = "both", iou_threshold: float = 0.5) -> list[FusedMoment]:
    """One video's moments of both channels in one ranking: ``shown`` (start, end, cosine), ``said`` (start,
    end, cosine, text); overlapping ones (IoU >= ``iou_threshold``) are one moment found by both."""
    check_channel(channel)
    rows: list[list] = []  # [start, end, shown score, said score, text]
    for start, end, score in shown if channel != "said" else ():
        rows.append([start, end, score, np.nan, ""])
    for start, end, score, text in said if channel != "shown" else ():
        match = next((r for r in rows if np.isnan(r[3]) and temporal_iou((r[0], r[1]), (start, end))
                      >= iou_threshold), None)
        if match is None:
            rows.append([start, end, np.nan, score, text])
        else:
            match[0], match[1] = min(match[0], start), max(match[1], end)
            match[3], match[4] = score, text
    if not rows:
        return []
    fused = _combine(fusion, np.array([r[2] for r in rows]), np.array([r[3] for r in rows]), channel)
    order = np.lexsort((np.array([r[0] for r in rows]), -fused))
    return [FusedMoment(float(rows[i][0]), float(rows[i][1]), float(fused[i]),
                        "both" if not np.isnan(rows[i][2]) and not np.isnan(rows[i][3])
                        else ("shown" if not np.isnan(rows[i][2]) else "said"), str(rows[i][4]), rank)
            for rank, i in enumerate(order, 1)]


def calibrate(shown: np.ndarray, said: np.ndarray, gold: np.ndarray, weights: Sequence[float] = WEIGHTS) -> Fusion:
    """Learn the rule on validation queries: each channel's mean and std over its scores, then the said weight
    of best video R@1 (ties: the weight nearest 0.5).

    Shape:
        shown [Q, N] cosines of each query with each video (NaN: the channel cannot score that video),
        said [Q, N] likewise, gold [Q] the index of each query's video
    """
    shown, said = np.asarray(shown, np.float64), np.asarray(said, np.float64)
    if shown.shape != said.shape or shown.ndim != 2 or len(gold) != len(shown):
        raise DataError(f"calibration needs two [Q, N] score matrices and Q answers, got {shown.shape}, "
                        f"{said.shape} and {len(gold)}")

    def stats(scores: np.ndarray) -> tuple[float, float]:
        finite = scores[np.isfinite(scores)]
        if not len(finite):
            return 0.0, 1.0
        return float(finite.mean()), float(finite.std()) or 1.0

    (m_shown, s_shown), (m_said, s_said) = stats(shown), stats(said)
    best: tuple[float, float] | None = None
    chosen = 0.5
    for weight in weights:
        fusion = Fusion(m_shown, s_shown, m_said, s_said, float(weight))
        hits = 0
        for q in range(len(gold)):
            fused = _combine(fusion, shown[q], said[q], "both")
            hits += int(np.argmax(fused) == gold[q])
        key = (hits / max(len(gold), 1), -abs(weight - 0.5))
        if best is None or key > best:
            best, chosen = key, float(weight)
    return Fusion(m_shown, s_shown, m_said, s_said, chosen)
