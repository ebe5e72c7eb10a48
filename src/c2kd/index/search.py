"""One search over a snapshot of the index: videos ranked by their best entry, or the best entries themselves.

The backend is asked one thing, :meth:`~c2kd.index.base.Backend.candidates`: the best keys for a query among
those a filter allows, and whether their scores are exact. An exact answer that holds every allowed entry
(a scan) is grouped by video in one pass; any other answer is re-scored exactly from the stored vectors,
and asked for more until enough distinct videos are found. A filter that leaves few entries
(:data:`EXACT_SUBSET_LIMIT`) is scanned here without the backend (exact, and faster than probing a structure
for a few matches).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from c2kd.index.base import Among, Backend, Hit
from c2kd.index.exact import scan, top_groups, top_rows
from c2kd.index.spans import Moment, rank_moments
from c2kd.index.view import View

#: with a metadata filter that leaves at most this many entries, the backend is bypassed for an exact scan of
#: those entries (exact and faster than probing an index for a few matches)
EXACT_SUBSET_LIMIT = 20_000
#: an approximate backend is first asked for ``candidates_per_hit`` entries per video wanted (at least
#: MIN_CANDIDATES), then for four times as many until enough distinct videos are found; the candidates are
#: re-scored exactly
MIN_CANDIDATES = 100
#: of a video's candidates, only its best few by the backend's approximate score are re-scored exactly (the
#: video ranks by its best entry; the rest of its windows near them are re-scored for its moments)
RESCORED_PER_VIDEO = 4
#: the videos of the best candidates, this many per video wanted, have their windows around the candidates
#: re-scored exactly before the top k are chosen (a video's best window is often not its best candidate)
RERANKED_PER_HIT = 2
#: through an approximate backend, a hit video's moments come from all its windows when it has at most this
#: many (about 5 minutes at the default windows; one contiguous read), else from those near its candidates
MOMENT_RESCORE_LIMIT = 512


@dataclass
class Scored:
    """Entries with exact scores: every entry of the search (``complete``, in position order), or the best
    ones found (best first) with ``found``, every position the backend returned.

    Shape:
        positions [n], scores [n], found [m >= n]
    """

    positions: np.ndarray
    scores: np.ndarray
    complete: bool
    exhausted: bool  # fewer entries than asked for exist
    found: np.ndarray


@dataclass
class Search:
    """One search over a snapshot: the videos (or entries) passing a normalised filter, ranked for a query."""

    view: View
    backend: Backend
    filters: dict[str, list]
    moments_per_hit: int
    iou: float
    length_prior: float
    per_hit: int
    subset: np.ndarray | None = field(init=False, default=None)  # entry positions passing the filter
    videos_allowed: np.ndarray | None = field(init=False, default=None)
    among: Among | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.filters:
            self.videos_allowed = self.view.allowed_videos(self.filters)
            self.subset = self.view.video_entries(self.videos_allowed)
            self.among = Among(self.view.keys[self.subset], self.filters)

    @property
    def size(self) -> int:
        return self.view.entries if self.subset is None else len(self.subset)

    def score(self, positions: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Exact scores of some entries. Shape: [n] positions, [E] -> [n] float32."""
        if len(positions) == 0:
            return np.zeros(0, np.float32)
        # einsum, not BLAS: a few thousand rows take well under a millisecond on one thread, and waking the BLAS
        # threads would take the cores from an approximate backend's own threads (2x slower queries measured)
        return np.einsum("ij,j->i", np.asarray(self.view.vectors(positions), np.float32), query).astype(np.float32)

    def scored(self, query: np.ndarray, n: int, per_video: int | None = None) -> Scored:
        """About the top-n entries with exact scores (or every entry, when the answer is a scan). With
        ``per_video``, only each video's best ``per_video`` candidates (by the backend's score) are kept."""
        view = self.view
        if self.subset is not None and len(self.subset) <= EXACT_SUBSET_LIMIT:
            scores = scan(view.vectors(self.subset), query)
            return Scored(self.subset, scores, True, True, self.subset)
        answer = self.backend.candidates(query, n, self.among)
        allowed = view.keys if self.among is None else self.among.keys
        if answer.exact and len(answer.keys) == len(allowed):  # every allowed entry: a scan
            if np.array_equal(answer.keys, allowed):
                every = np.arange(view.entries) if self.subset is None else self.subset
                return Scored(every, answer.scores, True, True, every)
            pos = view.positions_of(answer.keys)
            order = np.argsort(pos, kind="stable")
            return Scored(pos[order], answer.scores[order], True, True, pos[order])
        exhausted = len(answer.keys) < n
        pos, present = view.locate(answer.keys)
        found, backend_scores = pos[present], answer.scores[present]
        keep = slice(None) if per_video is None else _first_per_group(view.entry_video[found], per_video)
        pos = found[keep]
        scores = backend_scores[keep] if answer.exact else self.score(pos, query)
        order = np.lexsort((pos, -scores))
        return Scored(pos[order], scores[order], False, exhausted, found)

    def moments(self, query: np.ndarray, k: int) -> list[Hit]:
        """The top-k entries across the collection, each as a hit of its video with one moment."""
        if self.size == 0:
            return []
        got = self.scored(query, min(self.size, k * self.per_hit))
        if got.complete:
            scores, rows = top_rows(got.scores, k)
            pos = got.positions[rows]
        else:
            pos, scores = got.positions[:k], got.scores[:k]
        view = self.view
        hits = []
        for rank, (p, score) in enumerate(zip(pos, scores), start=1):
            v = int(view.entry_video[p])
            moment = () if view.whole[p] else (Moment(float(view.start[p]), float(view.end[p]), float(score),
                                                      rank=1),)
            hits.append(Hit(view.ids[v], float(score), rank, dict(view.metadata[v]), moment))
        return hits

    def videos(self, query: np.ndarray, k: int) -> list[Hit]:
        """The top-k videos, each scored by its best entry, with its best moments."""
        view = self.view
        if self.size == 0:
            return []
        pool: np.ndarray | None = None  # the candidate entries of a partial answer
        scanned: tuple[np.ndarray | None, np.ndarray] | None = None  # (entry positions or all, scores) of a scan
        n = min(self.size, max(k * self.per_hit, MIN_CANDIDATES))
        while True:
            got = self.scored(query, n, RESCORED_PER_VIDEO)
            if got.complete:
                break
            owner = view.entry_video[got.positions]
            _, first = np.unique(owner, return_index=True)  # best entry of each video (sorted best first)
            if len(first) >= k or got.exhausted or n >= self.size:
                break
            n = min(self.size, n * 4)
        if got.complete:
            if self.videos_allowed is None:
                video_scores, videos = top_groups(got.scores, view.first, k)
                scanned = (None, got.scores)
            else:
                starts = np.concatenate([[0], np.cumsum(view.count[self.videos_allowed])[:-1]])
                video_scores, groups = top_groups(got.scores, starts, k)
                videos, scanned = self.videos_allowed[groups], (got.positions, got.scores)
        else:
            first = np.sort(first)[:k * RERANKED_PER_HIT]
            videos, video_scores = owner[first], got.scores[first]
            pool = np.sort(got.found)  # a video's entries are consecutive: its candidates become one slice
        ranked = []
        for v, score in zip(videos.tolist(), video_scores.tolist()):
            windows = self._windows_of(v, query, scanned, pool)
            best = score if windows is None else max(score, float(windows[1].max()))
            ranked.append((best, v, windows))
        if pool is not None:  # re-scored around their candidates: order the videos by their exact best
            ranked = sorted(ranked, key=lambda item: (-item[0], item[1]))[:k]
        return [Hit(view.ids[v], score, rank, dict(view.metadata[v]), self._moments(windows))
                for rank, (score, v, windows) in enumerate(ranked, start=1)]

    def _windows_of(self, video: int, query: np.ndarray, scanned: tuple[np.ndarray | None, np.ndarray] | None,
                    pool: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
        """A video's windows and their exact scores (None for a whole clip): all its entries after a scan, or
        re-scored from the stored vectors; for a video of more than :data:`MOMENT_RESCORE_LIMIT` windows, those
        overlapping one of its candidates in ``pool`` (sorted; the neighbours of the best short windows, and the
        longer windows a moment may extend to)."""
        view = self.view
        if view.whole[view.first[video]]:
            return None
        pos = np.arange(view.first[video], view.first[video] + view.count[video])
        if scanned is not None:  # the scan scored them: of all entries, or of the filtered subset
            where, every = scanned
            return pos, every[pos if where is None else np.searchsorted(where, pos)]
        if len(pos) > MOMENT_RESCORE_LIMIT:
            assert pool is not None
            seeds = pool[np.searchsorted(pool, pos[0]):np.searchsorted(pool, pos[-1], side="right")]
            near = ((view.start[pos][:, None] < view.end[seeds][None]) &
                    (view.end[pos][:, None] > view.start[seeds][None])).any(axis=1)
            pos = pos[near]
        return pos, self.score(pos, query)

    def _moments(self, windows: tuple[np.ndarray, np.ndarray] | None) -> tuple[Moment, ...]:
        if windows is None or self.moments_per_hit <= 0:
            return ()
        pos, scores = windows
        return rank_moments(self.view.start[pos], self.view.end[pos], scores, self.iou, self.moments_per_hit,
                            self.length_prior)


def _first_per_group(groups: np.ndarray, count: int) -> np.ndarray:
    """Which items to keep so that each group keeps only its first ``count`` (in the given order).

    Shape:
        groups [n] -> [n] bool
    """
    order = np.argsort(groups, kind="stable")
    ordered = groups[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    within = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    keep = np.zeros(len(groups), bool)
    keep[order[within < count]] = True
    return keep
