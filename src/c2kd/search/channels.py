"""One rule that ranks videos and moments by what is shown (frames) and what is said (timed text).

The two channels' scores are cosines of different encoders, not on one scale. Each channel's scores are first
standardised with statistics learned on validation queries (``z = (s - mean) / std`` over all the channel's
query-entry scores), then combined with a weight learned on the same queries::

    fused = (1 - w) * z_shown + w * z_said

or (``scale="query"``) videos are standardised per query instead: each channel's scores by the mean and std of
that channel's best :data:`POOL` scores for this query, so that a channel counts by how far its candidate stands
out from its own other candidates for this query (a query every video matches a little says less than one that
one video matches clearly); a video the shown channel did not return (it ranks every video, so it ranked this one
below its last candidate) gets the lowest shown z it returned. Moments are standardised with the per-channel
statistics either way. With ``both_first``, a moment found by both channels ranks above every moment found by
one (then by the fused score).

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
#: how the two standardised, weighted channels are combined: their sum, or the larger of the two
RULES = ("sum", "max")
#: how video scores are standardised: per channel with statistics learned once (``val``), or per query
SCALES = ("val", "query")
#: per-query standardisation: each channel's best this many scores of the query (the search looks at >= 50)
POOL = 50
#: the rule until calibrated, as chosen on val by bench/bench_said_shown.py with the quickstart's C2KD student
#: (full splits, 2026-12-07; docs/search.md): the said weight, the combination, per-channel standardisation of
#: videos by statistics (not per query), and moments ranked by the fused score alone (not found-by-both first)
DEFAULT_SAID_WEIGHT = 0.4
DEFAULT_RULE = "max"
DEFAULT_SCALE = "val"
DEFAULT_BOTH_FIRST = False
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
    rule: str = "sum"
    scale: str = "val"
    both_first: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping | None) -> Fusion:
        data = data or {}
        rule, scale = str(data.get("rule", "sum")), str(data.get("scale", "val"))
        if rule not in RULES:
            raise DataError(f"unknown fusion rule {rule!r} in the said entries' settings; use one of {RULES}")
        if scale not in SCALES:
            raise DataError(f"unknown fusion scale {scale!r} in the said entries' settings; use one of {SCALES}")
        numbers = {k: float(v) for k, v in data.items()
                   if k in cls.__dataclass_fields__ and k not in ("rule", "scale", "both_first")}
        return cls(**numbers, rule=rule, scale=scale, both_first=bool(data.get("both_first", False)))

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


def query_z(scores: np.ndarray, pool: int = POOL) -> np.ndarray:
    """Standardise each query's scores by the mean and std of its best ``pool`` finite scores (NaN stays NaN).

    Shape:
        scores [n] or [Q, n] (a row per query) -> the same shape, float64
    """
    scores = np.asarray(scores, np.float64)
    rows = np.atleast_2d(scores)
    out = np.full(rows.shape, np.nan)
    for i, row in enumerate(rows):
        finite = row[np.isfinite(row)]
        if not len(finite):
            continue
        best = np.sort(finite)[::-1][:pool]
        std = float(best.std()) or 1.0
        out[i] = (row - float(best.mean())) / std
    return out.reshape(scores.shape)


def _lowest_for_missing(z: np.ndarray) -> np.ndarray:
    """Each row's NaN (a candidate the channel did not return) set to the row's lowest value."""
    rows = np.atleast_2d(z).copy()
    for row in rows:
        finite = row[np.isfinite(row)]
        if len(finite):
            row[np.isnan(row)] = finite.min()
    return rows.reshape(z.shape)


def _combine(fusion: Fusion, shown: np.ndarray, said: np.ndarray, channel: str, videos: bool = False) -> np.ndarray:
    """Fused scores of candidates from raw channel scores (NaN: not found by that channel); ``videos``: the
    candidates are one query's videos (a row per query), standardised per query when ``fusion.scale`` says so.

    Shape:
        shown, said [n] (or [Q, n] with ``videos``) -> the same shape, float64 (-inf for a candidate the chosen
        channel did not find)
    """
    if videos and fusion.scale == "query":
        z_shown, z_said = query_z(shown), query_z(said)
        if channel == "both":
            z_shown = np.where(np.isnan(z_said), z_shown, _lowest_for_missing(z_shown))
    else:
        z_shown, z_said = fusion.z("shown", shown), fusion.z("said", said)
    if channel == "shown":
        return np.where(np.isnan(z_shown), -np.inf, z_shown)
    if channel == "said":
        return np.where(np.isnan(z_said), -np.inf, z_said)
    a = (1.0 - fusion.said_weight) * z_shown
    b = fusion.said_weight * z_said
    if fusion.rule == "max":  # the stronger channel decides; a channel that cannot score the candidate is left out
        return np.where(np.isnan(a), np.where(np.isnan(b), -np.inf, b), np.where(np.isnan(b), a, np.maximum(a, b)))
    summed = np.where(np.isnan(a), 0.0, a) + np.where(np.isnan(b), 0.0, b)
    return np.where(np.isnan(a) & np.isnan(b), -np.inf, summed)


def fused_video_scores(fusion: Fusion, shown: np.ndarray, said: np.ndarray, channel: str = "both") -> np.ndarray:
    """The rule's scores of every query's videos at once (what :func:`fuse_videos` ranks by).

    Shape:
        shown, said [Q, N] cosines (NaN: the channel did not return / cannot score that video) -> [Q, N] float64,
        -inf for a video the chosen channel did not find
    """
    return _combine(fusion, np.asarray(shown, np.float64), np.asarray(said, np.float64), check_channel(channel),
                    videos=True)


def fuse_videos(shown: Mapping[str, float], said: Mapping[str, float], fusion: Fusion, channel: str = "both",
                k: int | None = None) -> list[tuple[str, float, str]]:
    """Videos ranked by the rule: (video id, fused score, found by ``shown``/``said``/``both``), best first."""
    check_channel(channel)
    ids = list(dict.fromkeys([*shown, *said]))
    a = np.array([shown.get(v, np.nan) for v in ids], np.float64)
    b = np.array([said.get(v, np.nan) for v in ids], np.float64)
    fused = _combine(fusion, a, b, channel, videos=True)
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
    by_both = np.array([not np.isnan(r[2]) and not np.isnan(r[3]) for r in rows])
    first = -by_both.astype(int) if fusion.both_first and channel == "both" else np.zeros(len(rows), int)
    order = np.lexsort((np.array([r[0] for r in rows]), -fused, first))
    return [FusedMoment(float(rows[i][0]), float(rows[i][1]), float(fused[i]),
                        "both" if not np.isnan(rows[i][2]) and not np.isnan(rows[i][3])
                        else ("shown" if not np.isnan(rows[i][2]) else "said"), str(rows[i][4]), rank)
            for rank, i in enumerate(order, 1)]


def calibrate(shown: np.ndarray, said: np.ndarray, gold: np.ndarray, weights: Sequence[float] = WEIGHTS,
              rules: Sequence[str] = RULES, scales: Sequence[str] = ("val",)) -> Fusion:
    """Learn the rule on validation queries: each channel's mean and std over its scores, then the video
    standardisation (``scales``), the combination (``rules``) and said weight of best video R@1 (ties: the
    scale and rule listed first, and the weight nearest 0.5).

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
    best: tuple[float, int, int, float] | None = None
    chosen = Fusion(m_shown, s_shown, m_said, s_said)
    gold = np.asarray(gold)
    for scale in scales:
        if scale not in SCALES:
            raise DataError(f"unknown fusion scale {scale!r}; use one of {SCALES}")
        for rule in rules:
            for weight in weights:
                fusion = Fusion(m_shown, s_shown, m_said, s_said, float(weight), rule, scale)
                fused = _combine(fusion, shown, said, "both", videos=True)
                hits = int((np.argmax(fused, axis=1) == gold).sum()) if fused.size else 0
                key = (hits / max(len(gold), 1), -list(scales).index(scale), -list(rules).index(rule),
                       -abs(weight - 0.5))
                if best is None or key > best:
                    best, chosen = key, fusion
    return chosen
