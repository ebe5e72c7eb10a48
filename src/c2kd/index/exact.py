"""The one exact scan (every entry scored by a chunked matrix product) and the exact backend built on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from c2kd.index.base import BACKENDS, Among, Backend, Candidates
from c2kd.index.blocks import RowBlocks, Rows
from c2kd.index.filters import MetadataValue
from c2kd.index.settings import Option

#: rows per block of the matrix product
CHUNK = 262_144


def best_k(values: np.ndarray, tie_keys: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest values of each row, a tie at the k-th place going to the lower tie key.

    ``argpartition`` alone keeps any of the values tied at the k-th place; rows where such a tie straddles
    the cut are redone in order. The result is not sorted.

    Shape:
        values [Q, M], tie_keys [Q, M] -> [Q, min(k, M)] positions
    """
    m = values.shape[1]
    if k >= m:
        return np.broadcast_to(np.arange(m), values.shape).copy()
    part = np.argpartition(-values, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(values, part, axis=1).min(axis=1, keepdims=True)
    for row in np.flatnonzero((values >= kth).sum(axis=1) > k):
        above = np.flatnonzero(values[row] > kth[row, 0])
        tied = np.flatnonzero(values[row] == kth[row, 0])
        tied = tied[np.argsort(tie_keys[row, tied], kind="stable")]
        part[row] = np.concatenate([above, tied[: k - len(above)]])
    return part


def scored_chunks(vectors: np.ndarray | RowBlocks, queries: np.ndarray, chunk: int = CHUNK,
                  out: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """The scan: ``vectors`` read a chunk of rows at a time (as float32) and multiplied with the queries.

    With ``out`` ([Q, N] float32) every chunk's scores are written into it.

    Shape:
        vectors [N, E], queries [Q, E] -> yields (first row, scores [Q, C])
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    for first in range(0, len(vectors), chunk):
        block = np.asarray(vectors[first:first + chunk], dtype=np.float32)
        if out is None:
            yield first, queries @ block.T
        else:
            scores = out[:, first:first + len(block)]
            np.matmul(queries, block.T, out=scores)
            yield first, scores


def scan(vectors: np.ndarray | RowBlocks, query: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """Every row's inner product with one query (what the exact backend and a filtered search compute).

    Shape:
        vectors [N, E], query [E] -> [N] float32
    """
    every = np.empty((1, len(vectors)), np.float32)
    for _ in scored_chunks(vectors, np.asarray(query, np.float32).reshape(1, -1), chunk, every):
        pass
    return every[0]


def top_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of some scores, best first, a tie going to the lower row.

    Shape:
        scores [N] -> scores [min(k, N)], rows [min(k, N)]
    """
    scores = np.asarray(scores, np.float32)[None]
    part = best_k(scores, np.broadcast_to(np.arange(scores.shape[1]), scores.shape), k)[0]
    order = np.lexsort((part, -scores[0, part]))
    return scores[0, part[order]], part[order].astype(np.int64)


def top_groups(scores: np.ndarray, starts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best groups of consecutive rows (group ``g``: rows ``starts[g]`` to the next start), each scored by
    its best row, best first, a tie going to the lower group; an empty group scores -inf.

    Shape:
        scores [N], starts [G] ascending from 0 -> scores [min(k, G)], groups [min(k, G)]
    """
    starts = np.asarray(starts, np.int64)
    if len(starts) == 0 or len(scores) == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    best = np.full(len(starts), -np.inf, np.float32)
    filled = np.diff(np.r_[starts, len(scores)]) > 0
    best[filled] = np.maximum.reduceat(scores, starts[filled])
    return top_rows(best, k)


def topk_inner_product(vectors: np.ndarray | RowBlocks, queries: np.ndarray, k: int,
                       chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k rows of ``vectors`` by inner product with each of many queries, best first, in memory
    O(Q * chunk): a running top-k over :func:`scored_chunks`; ties are broken by the lower row index.

    Shape:
        vectors [N, E], queries [Q, E] -> scores [Q, min(k, N)] float32, rows [Q, min(k, N)] int64
    """
    n, q = len(vectors), len(queries)
    k = min(k, n)
    if k <= 0 or q == 0:
        return np.zeros((q, 0), np.float32), np.zeros((q, 0), np.int64)
    best_s = np.empty((q, 0), np.float32)
    best_i = np.empty((q, 0), np.int64)
    for start, scores in scored_chunks(vectors, queries, chunk):
        rows = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        if scores.shape[1] > k:
            part = best_k(scores, rows, k)
            scores = np.take_along_axis(scores, part, axis=1)
            rows = part + start
        best_s = np.concatenate([best_s, scores], axis=1)
        best_i = np.concatenate([best_i, rows], axis=1)
        if best_s.shape[1] > k:
            part = best_k(best_s, best_i, k)
            best_s = np.take_along_axis(best_s, part, axis=1)
            best_i = np.take_along_axis(best_i, part, axis=1)
    order = np.lexsort((best_i, -best_s), axis=1)  # score descending, then row ascending
    return np.take_along_axis(best_s, order, axis=1), np.take_along_axis(best_i, order, axis=1)


def grouped_topk(vectors: np.ndarray | RowBlocks, queries: np.ndarray, starts: np.ndarray, k: int,
                 chunk: int = CHUNK, row_scores: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact top-k *groups* of contiguous rows for each of many queries, each scored by its best row.

    Group ``g`` is rows ``starts[g]:starts[g + 1]`` (the last one runs to the end); one pass of
    :func:`scored_chunks` keeps the running maximum of every group, so one group's many rows never crowd the
    others out. Ties are broken by the lower group. Every row's score is returned too, unless ``row_scores``
    is False (then [Q, 0]).

    Shape:
        vectors [N, E], queries [Q, E], starts [G] ascending from 0 -> scores [Q, min(k, G)],
        groups [Q, min(k, G)], row scores [Q, N]
    """
    n, q, g = len(vectors), len(queries), len(starts)
    k = min(k, g)
    every = np.empty((q, n if row_scores else 0), np.float32)
    if k <= 0 or q == 0 or n == 0:
        return np.zeros((q, 0), np.float32), np.zeros((q, 0), np.int64), every
    best = np.full((q, g), -np.inf, np.float32)
    for first, scores in scored_chunks(vectors, queries, chunk, every if row_scores else None):
        group = np.searchsorted(starts, np.arange(first, first + scores.shape[1]), side="right") - 1  # [C]
        cuts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])  # first row of each group in the chunk
        here = group[cuts]
        best[:, here] = np.maximum(best[:, here], np.maximum.reduceat(scores, cuts, axis=1))
    part = best_k(best, np.broadcast_to(np.arange(g), best.shape), k)
    top = np.take_along_axis(best, part, axis=1)
    order = np.lexsort((part, -top), axis=1)  # score descending, then group ascending
    return (np.take_along_axis(top, order, axis=1), np.take_along_axis(part, order, axis=1).astype(np.int64),
            every)


@BACKENDS.register("exact")
class ExactBackend(Backend):
    """All vectors (the segments' memory maps, never copied together); a query is one :func:`scan` of those
    allowed, an exact answer with every allowed key's score.

    About 12 ms per query over 100k x 512 on 2 cores; use ``faiss`` beyond a few million videos.
    """

    name = "exact"
    OPTIONS = (Option("chunk", int, "rows per block of the matrix product", low=1),)

    def __init__(self, dim: int, options: Mapping[str, Any] | None = None):
        super().__init__(dim, options)
        self.chunk = int(self.options.get("chunk", CHUNK))
        self._keys = np.zeros(0, np.int64)  # ascending: keys are assigned increasingly and appended
        self._vectors = RowBlocks([], self.dim)  # the added arrays (memory maps stay maps), never concatenated

    def add(self, keys: np.ndarray, vectors: Rows, payloads: Sequence[Mapping[str, MetadataValue]]) -> None:
        keys = np.asarray(keys, np.int64)
        if not len(keys):
            return
        if len(self._keys) and keys.min() <= self._keys[-1]:  # not after the last key: sort all (rare)
            order = np.argsort(np.concatenate([self._keys, keys]), kind="stable")
            whole = np.concatenate([np.asarray(self._vectors), np.asarray(vectors).reshape(-1, self.dim)])
            self._keys, self._vectors = np.concatenate([self._keys, keys])[order], RowBlocks([whole[order]], self.dim)
        else:
            self._keys = np.concatenate([self._keys, keys])
            self._vectors = self._vectors.appended(vectors if isinstance(vectors, np.ndarray) else np.asarray(vectors))

    def remove(self, keys: np.ndarray) -> None:
        keep = ~np.isin(self._keys, np.asarray(keys, np.int64))
        if not keep.all():
            self._keys, self._vectors = self._keys[keep], self._vectors.kept(keep)

    def load_state(self, directory: Path, keys: np.ndarray, vectors: Callable[[], RowBlocks],
                   payloads: Callable[[], Sequence[Mapping[str, MetadataValue]]]) -> None:
        self._keys = np.zeros(0, np.int64)
        self._vectors = RowBlocks([], self.dim)
        whole = vectors()
        for block in whole.blocks if isinstance(whole, RowBlocks) else [whole]:  # keep the segments' maps
            self.add(keys[len(self._keys):len(self._keys) + len(block)], block, [])

    def candidates(self, query: np.ndarray, n: int, among: Among | None = None) -> Candidates:
        query = np.asarray(query, np.float32).reshape(self.dim)
        if among is None:
            return Candidates(self._keys, scan(self._vectors, query, self.chunk), True)
        allowed = np.asarray(among.keys, np.int64)
        pos = np.searchsorted(self._keys, allowed)
        found = pos < len(self._keys)
        pos = pos[found]
        pos = np.unique(pos[self._keys[pos] == allowed[found]])  # ascending rows of the allowed keys
        return Candidates(self._keys[pos], scan(self._vectors[pos], query, self.chunk), True)

    def __len__(self) -> int:
        return len(self._keys)
