"""Approximate search with faiss (IVF-Flat, IVF-PQ or HNSW) for corpora of millions of videos or moments.

- ``ivf`` (default): an inverted file over ``nlist`` k-means cells, trained once on a sample of the first
  vectors added; a query scans the ``nprobe`` nearest cells. Adding and removing videos later needs no
  retraining. Retrain (``c2kd index build``) when the corpus has grown many times over.
- ``ivfpq``: the same inverted file with each vector compressed to ``m`` bytes (product quantisation,
  ``nbits`` = 8): ten million 512-d entries take ~0.7 GB of memory; the index re-scores the candidates
  exactly from its stored (memory-mapped) vectors, so the scores shown are exact cosines.
- ``hnsw``: a graph index (``M`` links per node); no training. faiss cannot delete from an HNSW graph, so
  removed videos are masked out of every search and the graph is rebuilt once half of it is masked.

faiss's ``distance_compute_blas_threshold`` is raised on import: on small CPUs its BLAS path for batches of
queries is slower than the SIMD kernels (measured for this project, see BRIEF section 5).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from c2kd.errors import ConfigError, DamagedFileError, require
from c2kd.index.base import BACKENDS, Among, Backend, Candidates
from c2kd.index.blocks import RowBlocks, Rows
from c2kd.index.filters import MetadataValue, Scalar
from c2kd.index.settings import Option, check_probes
from c2kd.reading import read_npy

INDEX_FILE = "faiss.index"
DELETED_FILE = "deleted.npy"
BLAS_THRESHOLD = 1 << 30
BULK_BLAS_THRESHOLD = 20
KINDS = ("ivf", "ivfpq", "hnsw")
#: rows converted to float32 and added at a time; a bar is shown when adding at least PROGRESS_FROM rows
ADD_CHUNK = 65_536
PROGRESS_FROM = 500_000


def _faiss():
    faiss = require("faiss", "search", "approximate search (backend 'faiss')")
    if faiss.cvar.distance_compute_blas_threshold < BLAS_THRESHOLD:
        faiss.cvar.distance_compute_blas_threshold = BLAS_THRESHOLD
    return faiss


@contextmanager
def _bulk(faiss) -> Iterator[None]:
    """faiss's BLAS path while training and adding many vectors at once (1.7x faster for 20k rows here);
    queries keep the SIMD kernels, faster on small CPUs for the few queries of a search."""
    faiss.cvar.distance_compute_blas_threshold = BULK_BLAS_THRESHOLD
    try:
        yield
    finally:
        faiss.cvar.distance_compute_blas_threshold = BLAS_THRESHOLD


def auto_nlist(n: int) -> int:
    """Number of IVF cells for ``n`` vectors: about 4 sqrt(n), with at least 39 training points per cell."""
    return int(max(1, min(round(4 * math.sqrt(max(n, 1))), n // 39)))


@BACKENDS.register("faiss")
class FaissBackend(Backend):
    """faiss IVF-Flat, IVF-PQ or HNSW-Flat over inner product, keyed by the index's int64 keys (options:
    :attr:`OPTIONS`)."""

    name = "faiss"
    state = "snapshot"
    OPTIONS = (
        Option("kind", str, "the structure", choices=KINDS, at_search=False),
        Option("nlist", int, "IVF cells (default about 4 sqrt(entries))", low=1, at_search=False),
        Option("nprobe", int, "IVF cells scanned per query, at most nlist (default nlist/16, at least 8)", low=1),
        Option("train_sample", int, "vectors the IVF cells are trained on (default 64 per cell)", low=1,
               at_search=False),
        Option("m", int, "IVF-PQ bytes per vector, a divisor of the embedding size (default size/8)", low=1,
               at_search=False),
        Option("nbits", int, "IVF-PQ bits per code (default 8)", low=1, high=16, at_search=False),
        Option("M", int, "HNSW links per node (default 32)", low=2, at_search=False),
        Option("ef_construction", int, "HNSW candidates while building (default 80)", low=1, at_search=False),
        Option("ef_search", int, "HNSW candidates while searching (default 96)", low=1),
    )

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().check_options(options)
        nlist, nprobe = checked.get("nlist"), checked.get("nprobe")
        if nlist is not None and nlist < 8 and nprobe == 8:  # the default of indexes built before 2026-12-03
            checked["nprobe"] = nlist
        check_probes("faiss", checked)
        return checked

    def __init__(self, dim: int, options: Mapping[str, Any] | None = None):
        super().__init__(dim, options)
        self.kind = str(self.options.setdefault("kind", "ivf"))
        self._faiss = _faiss()
        self._index: Any = None  # a faiss index (SWIG objects carry no types)
        self._deleted = np.zeros(0, np.int64)  # HNSW tombstones
        self._count = 0

    # -- construction -------------------------------------------------------------------------------------
    def _new_index(self, sample: Rows):
        faiss = self._faiss
        if self.kind == "hnsw":
            m = int(self.options.setdefault("M", 32))
            graph = faiss.IndexHNSWFlat(self.dim, m, faiss.METRIC_INNER_PRODUCT)
            graph.hnsw.efConstruction = int(self.options.setdefault("ef_construction", 80))
            self.options.setdefault("ef_search", 96)
            return faiss.IndexIDMap2(graph)
        nlist = int(self.options.get("nlist") or auto_nlist(len(sample)))
        self.options["nlist"] = nlist
        self.options.setdefault("nprobe", min(nlist, max(8, nlist // 16)))
        self.check_options(self.options)  # an nprobe given before the cells were counted
        n_train = min(len(sample), int(self.options.get("train_sample") or 64 * nlist))
        rng = np.random.default_rng(0)
        rows = np.arange(len(sample)) if n_train >= len(sample) else np.sort(rng.choice(len(sample), n_train, False))
        train = sample[rows]
        quantizer = faiss.IndexFlatIP(self.dim)
        if self.kind == "ivfpq":
            m = int(self.options.setdefault("m", max(1, self.dim // 8)))
            if self.dim % m:
                raise ConfigError(f"faiss ivfpq: m={m} must divide the embedding size {self.dim}, e.g. m={self.dim // 8}")
            nbits = int(self.options.setdefault("nbits", 8))
            index = faiss.IndexIVFPQ(quantizer, self.dim, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.min_points_per_centroid = 1  # small corpora: no warning, a fine coarse split
        with _bulk(faiss):
            index.train(np.ascontiguousarray(train, np.float32))
        index.quantizer_trains_alone = 0
        self._quantizer = quantizer  # keep the Python object alive with the index
        return index

    def add(self, keys: np.ndarray, vectors: Rows, payloads: Sequence[Mapping[str, MetadataValue]]) -> None:
        """Add in chunks of :data:`ADD_CHUNK` rows (float32 copies of one chunk at a time), with a bar for millions."""
        from c2kd.progress import progress_bar

        if len(keys) == 0:
            return
        if self._index is None:
            self._index = self._new_index(vectors)
        keys = np.ascontiguousarray(keys, np.int64)
        with progress_bar(total=len(keys), desc=f"faiss {self.kind}: adding entries", unit="entry", unit_scale=True,
                          disable=len(keys) < PROGRESS_FROM) as bar, _bulk(self._faiss):
            for start in range(0, len(keys), ADD_CHUNK):
                block = np.ascontiguousarray(vectors[start:start + ADD_CHUNK], np.float32).reshape(-1, self.dim)
                self._index.add_with_ids(block, keys[start:start + len(block)])
                bar.update(len(block))
        self._count += len(keys)

    def remove(self, keys: np.ndarray) -> None:
        if self._index is None or len(keys) == 0:
            return
        keys = np.ascontiguousarray(keys, np.int64)
        if self.kind != "hnsw":
            self._count -= int(self._index.remove_ids(self._faiss.IDSelectorBatch(len(keys), self._faiss.swig_ptr(keys))))
            return
        present = keys[np.isin(keys, self._id_map())]
        present = present[~np.isin(present, self._deleted)]
        self._deleted = np.union1d(self._deleted, present)
        self._count -= len(present)
        if len(self._deleted) > self._index.ntotal // 2:
            self._rebuild_hnsw()

    def _id_map(self) -> np.ndarray:
        return self._faiss.vector_to_array(self._index.id_map)

    def _rebuild_hnsw(self) -> None:
        ids = self._id_map()
        live = ids[~np.isin(ids, self._deleted)]
        vectors = np.stack([self._index.reconstruct(int(i)) for i in live]) if len(live) else np.zeros((0, self.dim))
        self._index, self._deleted, self._count = None, np.zeros(0, np.int64), 0
        self.add(live, vectors, [])

    # -- search -------------------------------------------------------------------------------------------
    def candidates(self, query: np.ndarray, n: int, among: Among | None = None) -> Candidates:
        """The ``n`` keys of the probed cells (or graph) nearest the query, among the allowed keys; approximate."""
        scores, keys = self.search(query[None], n, allowed=None if among is None else among.keys)
        return Candidates.best_first(scores[0], keys[0])

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               filters: Mapping[str, list[Scalar]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        faiss = self._faiss
        queries = np.ascontiguousarray(queries, np.float32).reshape(-1, self.dim)
        if self._index is None or self._count == 0 or (allowed is not None and len(allowed) == 0):
            return (np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64))
        selector = None
        if allowed is not None:
            allowed = np.ascontiguousarray(allowed, np.int64)
            selector = faiss.IDSelectorBatch(len(allowed), faiss.swig_ptr(allowed))
        elif len(self._deleted):
            selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(len(self._deleted), faiss.swig_ptr(self._deleted)))
        if self.kind != "hnsw":
            params = faiss.SearchParametersIVF(nprobe=int(self.options["nprobe"]))
        else:
            params = faiss.SearchParametersHNSW(efSearch=max(int(self.options["ef_search"]), k))
        if selector is not None:
            params.sel = selector
        if self.kind != "hnsw":  # a single query probes its cells on all threads, a batch splits the queries
            faiss.extract_index_ivf(self._index).parallel_mode = 0 if len(queries) >= faiss.omp_get_max_threads() else 1
        scores, keys = self._index.search(queries, k, params=params)
        scores = np.where(keys < 0, -np.inf, scores).astype(np.float32)
        return scores, keys.astype(np.int64)

    def __len__(self) -> int:
        return self._count

    # -- persistence --------------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        if self._index is not None:
            self._faiss.write_index(self._index, str(directory / INDEX_FILE))
            if len(self._deleted):
                np.save(directory / DELETED_FILE, self._deleted)

    def load_state(self, directory: Path, keys: np.ndarray, vectors: Callable[[], RowBlocks],
                   payloads: Callable[[], Sequence[Mapping[str, MetadataValue]]]) -> None:
        saved = self._read_state(directory)
        if saved is not None and saved[0].ntotal - len(saved[1]) == len(keys):
            self._index, self._deleted = saved
            self._count = int(self._index.ntotal - len(self._deleted))
            return
        # no saved structure, one that does not match the vectors (an interrupted update) or a damaged one: it
        # is derived from the vectors, so it is rebuilt from them
        self._index, self._deleted, self._count = None, np.zeros(0, np.int64), 0
        self.add(keys, vectors(), [])

    def _read_state(self, directory: Path) -> tuple[Any, np.ndarray] | None:
        """The saved faiss structure and masked keys, or None when absent or unreadable (cut short, garbage)."""
        path = directory / INDEX_FILE
        if not path.exists():
            return None
        try:
            index = self._faiss.read_index(str(path))
            deleted = (read_npy(directory / DELETED_FILE, "", mmap=False, ndim=1).astype(np.int64)
                       if (directory / DELETED_FILE).exists() else np.zeros(0, np.int64))
        except (RuntimeError, DamagedFileError):  # faiss raises RuntimeError for a file it cannot read
            return None
        return index, deleted

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, **self.options, "masked": len(self._deleted)}
