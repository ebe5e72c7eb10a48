"""The interface every vector backend implements, and the search hit type.

Backends store unit-norm float32 vectors under int64 keys (assigned by :class:`c2kd.index.VideoIndex`) and
return the top-k keys by inner product (= cosine similarity). Video ids, metadata and persistence of the
vectors themselves are the index's job; a backend only persists what it cannot rebuild cheaply (a trained
faiss structure, a Qdrant collection).

A new backend is one :class:`Backend` subclass in one module, registered beside it with
``@BACKENDS.register(name)``, its module named in :data:`BACKENDS`' modules.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from c2kd.index.blocks import RowBlocks, Rows
from c2kd.index.filters import MetadataValue, Scalar
from c2kd.index.options import Option, check_options
from c2kd.index.spans import Moment
from c2kd.registry import Registry


@dataclass(frozen=True)
class Hit:
    """One search result: a video id, its cosine similarity to the query, its metadata and matching moments.

    A video indexed as moment windows scores as its best window; ``moments`` are its best windows after
    temporal non-maximum suppression, best first (empty for a video indexed as one whole clip).
    """

    video_id: str
    score: float
    rank: int
    metadata: dict[str, MetadataValue] = field(default_factory=dict)
    moments: tuple[Moment, ...] = ()

    @property
    def moment(self) -> Moment | None:
        """The best moment, if the video was indexed as moments."""
        return self.moments[0] if self.moments else None

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "video_id": self.video_id, "score": self.score, "metadata": self.metadata,
                "moment": self.moment.to_dict() if self.moment else None,
                "moments": [m.to_dict() for m in self.moments]}


class Backend(ABC):
    """A store of keyed vectors with top-k inner-product search.

    Shape:
        add(keys [N] int64, vectors [N, E] float32); search(queries [Q, E]) -> scores [Q, k], keys [Q, k]
        (rows padded with score -inf and key -1 when fewer than k vectors qualify)
    """

    #: name used in ``index.json`` and on the command line
    name: ClassVar[str]
    #: True when the backend evaluates metadata filters itself (else it receives the allowed keys)
    native_filters: ClassVar[bool] = False
    #: how the backend's own state lives in the index folder: "none" (rebuilt from the vectors on open),
    #: "snapshot" (``save`` writes a new generation folder on every change) or "live" (the backend keeps one
    #: folder up to date itself, e.g. an embedded Qdrant database)
    state: ClassVar[str] = "none"
    #: False when an open backend holds a client or connection that forked processes cannot share (``c2kd serve
    #: --workers N`` refuses it)
    fork_safe: ClassVar[bool] = True
    #: True when ``search`` returns exact inner products (else the index re-scores its candidates exactly)
    exact_scores: ClassVar[bool] = False
    #: the ``-o name=value`` settings the backend takes (anything else is refused)
    OPTIONS: ClassVar[tuple[Option, ...]] = ()

    def __init__(self, dim: int, options: Mapping[str, Any] | None = None):
        self.dim = int(dim)
        self.options: dict[str, Any] = self.check_options(options or {})

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """The options checked against :attr:`OPTIONS` (and against each other, in subclasses): a
        :class:`~c2kd.errors.ConfigError` names a bad value and what it takes, or an unknown name and the known ones."""
        return check_options(options, cls.OPTIONS, f"backend {cls.name!r}")

    @abstractmethod
    def add(self, keys: np.ndarray, vectors: Rows, payloads: Sequence[Mapping[str, MetadataValue]]) -> None:
        """Insert vectors under new keys (the payloads are the videos' metadata plus ``video_id``)."""

    @abstractmethod
    def remove(self, keys: np.ndarray) -> None:
        """Delete the vectors of these keys (unknown keys are ignored)."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               filters: Mapping[str, list[Scalar]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k keys per query among ``allowed`` keys (or by ``filters`` for native-filter backends)."""

    def search_groups(self, queries: np.ndarray, k: int,
                      starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Exact top-k groups of consecutive keys (group g: the ``starts[g]``-th key on), scored by their best
        key, in one scan, with every key's score; None when the backend cannot (the index then asks
        :meth:`search` for enough keys).

        Shape:
            queries [Q, E], starts [G] -> scores [Q, k'], groups [Q, k'] (k' = min(k, G)), key scores [Q, N]
        """
        return None

    @abstractmethod
    def __len__(self) -> int:
        """Number of searchable vectors."""

    def save(self, directory: Path) -> None:  # noqa: B027 - optional: rebuildable backends keep nothing
        """Write the backend's own state into a new, empty ``directory`` (nothing for rebuildable backends)."""

    def load_state(self, directory: Path, keys: np.ndarray, vectors: Callable[[], RowBlocks],
                   payloads: Callable[[], Sequence[Mapping[str, MetadataValue]]]) -> None:
        """Restore from ``directory`` (or rebuild from the index's vectors), so that it holds exactly ``keys``.

        ``vectors`` and ``payloads`` are read only when called: a backend with a saved structure need not
        touch millions of stored vectors to open.
        """
        self.add(keys, vectors(), payloads())

    def close(self) -> None:  # noqa: B027 - optional: most backends hold nothing open
        """Release files and connections."""

    def describe(self) -> dict[str, Any]:
        """Settings worth showing in ``c2kd index info``."""
        return {"backend": self.name, **self.options}


#: every index backend by name, in ``index.json`` and on the command line; a backend's module is imported on the first
#: lookup, its optional library (faiss, qdrant_client, pymilvus) only when the backend is built
BACKENDS = Registry[type[Backend]](
    "index backend",
    modules=("c2kd.index.exact", "c2kd.index.faiss_backend", "c2kd.index.qdrant_backend",
             "c2kd.index.milvus_backend"),
    hint="`c2kd index build --help` describes them",
)


def pad_results(scores: list[np.ndarray], keys: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack per-query results of up to k items into [Q, k] arrays padded with -inf / -1."""
    out_scores = np.full((len(scores), k), -np.inf, dtype=np.float32)
    out_keys = np.full((len(scores), k), -1, dtype=np.int64)
    for i, (s, key) in enumerate(zip(scores, keys)):
        out_scores[i, : len(s)] = s
        out_keys[i, : len(key)] = key
    return out_scores, out_keys
