"""The vector-database backend: Qdrant, embedded (a folder inside the index) or a server for large deployments.

Options: ``url`` (e.g. ``http://qdrant:6333``; the API key is read from ``$QDRANT_API_KEY``, never stored),
``location`` (``:memory:`` for a throwaway in-process database), ``collection`` (default ``c2kd``). With neither
``url`` nor ``location``, the database is embedded in the index folder (``qdrant/``; one process at a time).
Metadata filters run inside Qdrant. Payload values are stored as strings (lists of strings for tags), so
filters compare text, as on the command line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from c2kd.errors import ConfigError, require
from c2kd.index.base import BACKENDS, Among, Backend, Candidates
from c2kd.index.blocks import RowBlocks, Rows
from c2kd.index.filters import MetadataValue, Scalar
from c2kd.index.settings import Option

UPSERT_BATCH = 512


def _payload(meta: Mapping[str, MetadataValue]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, value in meta.items():
        if value is None:
            continue
        out[field] = [str(v) for v in value] if isinstance(value, list) else str(value)
    return out


@BACKENDS.register("qdrant")
class QdrantBackend(Backend):
    """Vectors as Qdrant points (id = the index's key), compared by dot product (unit vectors: cosine)."""

    name = "qdrant"
    state = "live"
    fork_safe = False  # its client holds an open database
    OPTIONS = (Option("collection", str, "the Qdrant collection"),
               Option("url", str, "a Qdrant server, e.g. http://localhost:6333 (API key: $QDRANT_API_KEY)"),
               Option("location", str, "a client location, e.g. :memory:"))

    def __init__(self, dim: int, options: Mapping[str, Any] | None = None):
        super().__init__(dim, options)
        self._qm = require("qdrant_client", "search", "the Qdrant backend").models
        self.collection = str(self.options.setdefault("collection", "c2kd"))
        self._client = None

    def _connect(self, directory: Path):
        qdrant_client = require("qdrant_client", "search", "the Qdrant backend")
        if self.options.get("url"):
            return qdrant_client.QdrantClient(url=self.options["url"], api_key=os.environ.get("QDRANT_API_KEY"))
        if self.options.get("location"):
            return qdrant_client.QdrantClient(location=self.options["location"])
        directory.mkdir(parents=True, exist_ok=True)
        try:
            return qdrant_client.QdrantClient(path=str(directory))
        except RuntimeError as exc:  # the embedded database is locked by another process
            raise ConfigError(
                f"{directory}: the embedded Qdrant database is open in another process ({exc}). Stop that "
                "process (e.g. `c2kd serve`), or run a Qdrant server and build the index with --option url=..."
            ) from exc

    @property
    def client(self):
        if self._client is None:
            raise RuntimeError("Qdrant backend used before load_state()")
        return self._client

    def _ensure_collection(self) -> None:
        qm = self._qm
        if not self.client.collection_exists(self.collection):
            self.client.create_collection(self.collection, vectors_config=qm.VectorParams(size=self.dim,
                                                                                          distance=qm.Distance.DOT))

    def load_state(self, directory: Path, keys: np.ndarray, vectors: Callable[[], RowBlocks],
                   payloads: Callable[[], Sequence[Mapping[str, MetadataValue]]]) -> None:
        self._client = self._connect(directory)
        self._ensure_collection()
        if self.client.count(self.collection, exact=True).count != len(keys):
            # out of step with the index's vectors (an interrupted update, or a new server): re-upload all
            self.client.delete_collection(self.collection)
            self._ensure_collection()
            self.add(keys, vectors(), payloads())

    def add(self, keys: np.ndarray, vectors: Rows, payloads: Sequence[Mapping[str, MetadataValue]]) -> None:
        qm = self._qm
        vectors = np.asarray(vectors, np.float32).reshape(-1, self.dim)
        for start in range(0, len(keys), UPSERT_BATCH):
            stop = start + UPSERT_BATCH
            points = [qm.PointStruct(id=int(key), vector=vec.tolist(), payload=_payload(meta))
                      for key, vec, meta in zip(keys[start:stop], vectors[start:stop], payloads[start:stop])]
            self.client.upsert(self.collection, points=points, wait=True)

    def remove(self, keys: np.ndarray) -> None:
        if len(keys):
            self.client.delete(self.collection, points_selector=self._qm.PointIdsList(points=[int(k) for k in keys]),
                               wait=True)

    def _filter(self, filters: Mapping[str, list[Scalar]] | None):
        qm = self._qm
        if not filters:
            return None
        return qm.Filter(must=[qm.FieldCondition(key=field, match=qm.MatchAny(any=[str(v) for v in values]))
                               for field, values in filters.items()])

    def candidates(self, query: np.ndarray, n: int, among: Among | None = None) -> Candidates:
        """Qdrant's ``n`` nearest points, the filter evaluated by Qdrant; scores as Qdrant computes them."""
        scores, keys = self.search(query[None], n, filters=None if among is None else among.filters)
        return Candidates.best_first(scores[0], keys[0])

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               filters: Mapping[str, list[Scalar]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        qm = self._qm
        queries = np.asarray(queries, np.float32).reshape(-1, self.dim)
        query_filter = self._filter(filters)
        requests = [qm.QueryRequest(query=q.tolist(), limit=k, filter=query_filter, with_payload=False)
                    for q in queries]
        responses = self.client.query_batch_points(self.collection, requests=requests) if requests else []
        scores = np.full((len(queries), k), -np.inf, np.float32)
        keys = np.full((len(queries), k), -1, np.int64)
        for i, response in enumerate(responses):
            for j, point in enumerate(response.points[:k]):
                scores[i, j], keys[i, j] = point.score, int(point.id)
        return scores, keys

    def __len__(self) -> int:
        return int(self.client.count(self.collection, exact=True).count)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def describe(self) -> dict[str, Any]:
        where = self.options.get("url") or self.options.get("location") or "embedded (index folder)"
        return {"backend": self.name, "collection": self.collection, "where": where}
