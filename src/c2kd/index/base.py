"""The interface every vector backend implements, and the search hit type.

Backends store unit-norm float32 vectors under int64 keys (assigned by :class:`c2kd.index.VideoIndex`) and
answer a query with its best keys by inner product (= cosine similarity): one method,
:meth:`Backend.candidates`, which says whether its scores are exact. Video ids, metadata, the search itself
(:mod:`c2kd.index.search`) and persistence of the vectors are the index's job; a backend only persists what it
cannot rebuild cheaply (a trained faiss structure, a Qdrant collection).

A new backend is one :class:`Backend` subclass in one module (``add``, ``remove``, ``candidates``, ``__len__``;
``save``/``load_state`` when it keeps a structure), registered beside it with ``@BACKENDS.register(name)``, its
module named in :data:`BACKENDS`' modules.
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
from c2kd.index.settings import Option, check_options
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


@dataclass(frozen=True)
class Among:
    """The entries a search may return, when a metadata filter narrows it: their keys (ascending) and the
    normalised filter that chose them. A backend uses whichever it can (faiss the keys, a vector database the
    filter, which it evaluates itself by the rule of :mod:`c2kd.index.filters`)."""

    keys: np.ndarray  # [n] int64, ascending
    filters: Mapping[str, list[Scalar]]


@dataclass(frozen=True)
class Candidates:
    """A backend's answer for one query: keys, their scores, and whether the scores are exact inner products.

    An exact answer holds the exact top keys (at least as many as asked, or all there are); an exact answer
    that holds every allowed key lists them in ascending key order (a scan). Other answers are about the top
    keys, best first, by approximate scores: the index re-scores them from its stored vectors.

    Shape:
        keys [n] int64, scores [n] float32
    """

    keys: np.ndarray
    scores: np.ndarray
    exact: bool

    @classmethod
    def best_first(cls, scores: np.ndarray, keys: np.ndarray, exact: bool = False) -> Candidates:
        """One query's row of a top-k search (padded with key -1 where fewer than k qualified)."""
        keys, scores = np.asarray(keys, np.int64).reshape(-1), np.asarray(scores, np.float32).reshape(-1)
        found = keys >= 0
        return cls(keys[found], scores[found], exact)


class Backend(ABC):
    """A store of keyed vectors that answers a query with its best keys (:meth:`candidates`).

    Shape:
        add(keys [N] int64, vectors [N, E] float32); candidates(query [E], n) -> keys [n'], scores [n']
    """

    #: name used in ``index.json`` and on the command line
    name: ClassVar[str]
    #: how the backend's own state lives in the index folder: "none" (rebuilt from the vectors on open),
    #: "snapshot" (``save`` writes a new generation folder on every change) or "live" (the backend keeps one
    #: folder up to date itself, e.g. an embedded Qdrant database)
    state: ClassVar[str] = "none"
    #: False when an open backend holds a client or connection that forked processes cannot share (``c2kd serve
    #: --workers N`` refuses it)
    fork_safe: ClassVar[bool] = True
    #: the ``--option name=value`` settings the backend takes (anything else is refused)
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
    def candidates(self, query: np.ndarray, n: int, among: Among | None = None) -> Candidates:
        """About the best ``n`` keys for one query by inner product, among the keys of ``among`` (all when
        None), and whether their scores are exact (see :class:`Candidates`).

        Shape:
            query [E] -> keys [n'] (n' <= n for an approximate answer), scores [n']
        """

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


def backend_class(name: str) -> type[Backend]:
    """The backend class of this name (``exact``, ``faiss``, ``qdrant``, ``milvus`` or another registered in
    :data:`BACKENDS`); its optional library is not imported."""
    return BACKENDS.get(name)


def make_backend(name: str, dim: int, options: Mapping[str, Any] | None = None) -> Backend:
    """Instantiate a backend by name, its options checked (:meth:`Backend.check_options`)."""
    return backend_class(name)(dim, options)
