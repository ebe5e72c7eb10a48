"""The Milvus backend: Milvus Lite in the index folder (one machine, the tests), or a Milvus server or cluster.

Options: ``uri`` (a server, e.g. ``http://milvus:19530``; a token is read from ``$MILVUS_TOKEN``, never stored),
``collection`` (default ``c2kd``; one collection per index on a server), ``index_type`` (``FLAT``, the default:
every search scans all entries, so the candidates are the exact top entries; ``IVF_FLAT`` with ``nlist`` and
``nprobe``; ``AUTOINDEX``: the server's choice). Without ``uri`` the database is Milvus Lite, a file
``milvus/milvus.db`` in the index folder: pymilvus starts the Milvus engine (milvus-lite 2.5, the Milvus C++
server with its knowhere index library, built for one machine) as a child process over a Unix socket. One
process at a time may open it. Milvus Lite takes ``FLAT``, ``IVF_FLAT`` and ``AUTOINDEX``.

Metadata filters run inside Milvus, as expressions over a JSON field ``meta`` that holds every payload value as a
list of strings (one item for a single value): a field matches when one of its items is an accepted value, both
as text, the rule of the index's own filter (:meth:`c2kd.index.view.View.allowed_videos`).

Shape:
    add(keys [N] int64, vectors [N, E] float32); search(queries [Q, E], k) -> scores [Q, k], keys [Q, k]
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import sys
import threading
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from c2kd.errors import ConfigError, MissingDependencyError
from c2kd.index.base import BACKENDS, Among, Backend, Candidates
from c2kd.index.blocks import RowBlocks, Rows
from c2kd.index.filters import MetadataValue, Scalar
from c2kd.index.settings import Option, check_probes

#: the Milvus Lite database inside the backend's folder of the index (a name Milvus Lite accepts)
DB_FILE = "milvus.db"
#: rows per insert call (at 512-d float32 about 4 MB, well under Milvus's message limit)
INSERT_BATCH = 2048
#: keys per delete call (the delete is one ``id in [...]`` expression)
DELETE_BATCH = 8192
#: the most results one Milvus search returns per query; beyond it a search iterator pages through them
MAX_TOPK = 16384
INDEX_TYPES = ("FLAT", "IVF_FLAT", "AUTOINDEX")
SCHEMES = ("http://", "https://", "tcp://")

_lite_lock = threading.Lock()
_lite_users: dict[str, int] = {}  # Milvus Lite database path -> open backends of this process using it


def _pymilvus() -> Any:
    try:
        import pymilvus
    except ImportError as exc:
        raise MissingDependencyError("the Milvus backend needs pymilvus and milvus-lite: pip install "
                                     "'c2kd[search]'") from exc
    return pymilvus


def _lite_servers() -> Any:
    """Milvus Lite's server manager (milvus-lite 2.5: the Milvus engine). The package reads its own version
    through ``pkg_resources``, which setuptools 81 and later no longer ship: lacking it, a stand-in with the two
    names it uses is present only while milvus_lite is imported."""
    stand_in = None
    if importlib.util.find_spec("pkg_resources") is None:
        stand_in = types.ModuleType("pkg_resources")
        stand_in.DistributionNotFound = importlib.metadata.PackageNotFoundError  # type: ignore[attr-defined]
        stand_in.get_distribution = (  # type: ignore[attr-defined]
            lambda name: types.SimpleNamespace(version=importlib.metadata.version(name)))
        sys.modules["pkg_resources"] = stand_in
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError as exc:
        raise MissingDependencyError("the Milvus backend without --option uri=... needs milvus-lite 2.5 (the Milvus "
                                     "engine for one machine): pip install 'c2kd[search]'") from exc
    finally:
        if stand_in is not None and sys.modules.get("pkg_resources") is stand_in:
            del sys.modules["pkg_resources"]
    return server_manager_instance


def _payload(meta: Mapping[str, MetadataValue]) -> dict[str, list[str]]:
    """Every value as a list of strings (None dropped): what :func:`filter_expression` tests."""
    return {field: [str(v) for v in value] if isinstance(value, list) else [str(value)]
            for field, value in meta.items() if value is not None}


def filter_expression(filters: Mapping[str, list[Scalar]]) -> str:
    """A normalised filter as a Milvus boolean expression over the ``meta`` JSON field.

    Example:
        >>> filter_expression({"split": ["test"], "tag": ["a", 1]})
        'json_contains_any(meta["split"], ["test"]) and json_contains_any(meta["tag"], ["a", "1"])'
    """
    return " and ".join(f"json_contains_any(meta[{json.dumps(field, ensure_ascii=False)}], "
                        f"{json.dumps([str(v) for v in values], ensure_ascii=False)})"
                        for field, values in filters.items())


@BACKENDS.register("milvus")
class MilvusBackend(Backend):
    """Vectors as Milvus entities (primary key = the index's key), compared by inner product (unit vectors:
    cosine); the index re-scores the candidates exactly from its stored vectors."""

    name = "milvus"
    state = "live"
    fork_safe = False  # its gRPC channel does not survive fork
    OPTIONS = (
        Option("uri", str, "a Milvus server, e.g. http://localhost:19530 (token: $MILVUS_TOKEN); default: Milvus "
                           "Lite in the index folder"),
        Option("collection", str, "the Milvus collection (default c2kd)"),
        Option("index_type", str, "the Milvus index (default FLAT: exact candidates)", choices=INDEX_TYPES,
               at_search=False),
        Option("nlist", int, "IVF_FLAT cells (default 128)", low=1, high=65536, at_search=False),
        Option("nprobe", int, "IVF_FLAT cells scanned per query, at most nlist (default nlist/16, at least 8)",
               low=1),
    )

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().check_options(options)
        uri = checked.get("uri")
        if uri is not None and not uri.startswith(SCHEMES):
            raise ConfigError(f"backend 'milvus' option uri={uri!r} is not a server address: give e.g. "
                              "uri=http://localhost:19530, or no uri for Milvus Lite inside the index folder")
        check_probes("milvus", checked)
        return checked

    def __init__(self, dim: int, options: Mapping[str, Any] | None = None):
        super().__init__(dim, options)
        self._milvus = _pymilvus()
        self.collection = str(self.options.setdefault("collection", "c2kd"))
        self.index_type = str(self.options.setdefault("index_type", "FLAT"))
        if self.index_type == "IVF_FLAT":
            nlist = int(self.options.setdefault("nlist", 128))
            self.options.setdefault("nprobe", min(nlist, max(8, nlist // 16)))
            self.check_options(self.options)
        self._client: Any = None
        self._lite: str | None = None  # the Milvus Lite database this backend opened

    # -- connection ---------------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("Milvus backend used before load_state()")
        return self._client

    def _connect(self, directory: Path) -> Any:
        uri = self.options.get("uri")
        if uri:
            try:
                return self._milvus.MilvusClient(uri=uri, token=os.environ.get("MILVUS_TOKEN", ""))
            except self._milvus.MilvusException as exc:
                raise ConfigError(f"cannot reach the Milvus server {uri} ({exc}): start it, or check --option uri=... "
                                  "and $MILVUS_TOKEN") from exc
        _lite_servers()  # importable (pymilvus starts the engine through it)
        directory.mkdir(parents=True, exist_ok=True)
        path = str((directory / DB_FILE).resolve())
        with _lite_lock:
            try:
                client = self._milvus.MilvusClient(uri=path)
            except self._milvus.MilvusException as exc:  # another process holds the database's lock file
                raise ConfigError(
                    f"{directory / DB_FILE}: the Milvus Lite database is open in another process ({exc}). Stop "
                    "that process (e.g. `c2kd serve`), or run a Milvus server and build the index with "
                    "--option uri=http://HOST:19530") from exc
            _lite_users[path] = _lite_users.get(path, 0) + 1
        self._lite = path
        return client

    def _create_collection(self) -> None:
        data_type = self._milvus.DataType
        schema = self._milvus.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", data_type.INT64, is_primary=True)
        schema.add_field("vector", data_type.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("meta", data_type.JSON)
        index = self.client.prepare_index_params()
        params = {"nlist": int(self.options["nlist"])} if self.index_type == "IVF_FLAT" else {}
        index.add_index(field_name="vector", index_type=self.index_type, metric_type="IP", params=params)
        try:
            self.client.create_collection(self.collection, schema=schema, index_params=index,
                                          consistency_level="Strong")
        except self._milvus.MilvusException as exc:
            where = self.options.get("uri") or "Milvus Lite"
            raise ConfigError(f"{where} refused a collection of index {self.index_type} ({exc}); Milvus Lite takes "
                              f"index_type {', '.join(INDEX_TYPES)}") from exc

    def _collection_dim(self) -> int:
        fields = self.client.describe_collection(self.collection)["fields"]
        vector = [f for f in fields if f["name"] == "vector"]
        return int(vector[0]["params"]["dim"]) if vector else -1

    def load_state(self, directory: Path, keys: np.ndarray, vectors: Callable[[], RowBlocks],
                   payloads: Callable[[], Sequence[Mapping[str, MetadataValue]]]) -> None:
        self._client = self._connect(directory)
        if self.client.has_collection(self.collection) and self._collection_dim() != self.dim:
            where = self.options.get("uri") or directory / DB_FILE
            raise ConfigError(f"{where}: the Milvus collection {self.collection!r} holds {self._collection_dim()}-d "
                              f"vectors, this index {self.dim}-d: give each index its own --option collection=NAME")
        if not self.client.has_collection(self.collection):
            self._create_collection()
        if len(self) != len(keys):
            # out of step with the index's vectors (an interrupted update, or a new server): upload them all
            self.client.drop_collection(self.collection)
            self._create_collection()
            self.add(keys, vectors(), payloads())

    # -- changes ------------------------------------------------------------------------------------------
    def add(self, keys: np.ndarray, vectors: Rows, payloads: Sequence[Mapping[str, MetadataValue]]) -> None:
        """Insert in batches of :data:`INSERT_BATCH` rows (float32 copies of one batch at a time)."""
        for start in range(0, len(keys), INSERT_BATCH):
            stop = min(start + INSERT_BATCH, len(keys))
            block = np.ascontiguousarray(vectors[start:stop], np.float32).reshape(-1, self.dim)
            rows = [{"id": int(key), "vector": vec, "meta": _payload(meta)}
                    for key, vec, meta in zip(keys[start:stop], block, payloads[start:stop])]
            self.client.insert(self.collection, rows)

    def remove(self, keys: np.ndarray) -> None:
        for start in range(0, len(keys), DELETE_BATCH):
            self.client.delete(self.collection, ids=[int(k) for k in keys[start:start + DELETE_BATCH]])

    # -- search -------------------------------------------------------------------------------------------
    def _search_params(self) -> dict[str, Any]:
        params = {"nprobe": int(self.options["nprobe"])} if self.index_type == "IVF_FLAT" else {}
        return {"metric_type": "IP", "params": params}

    def candidates(self, query: np.ndarray, n: int, among: Among | None = None) -> Candidates:
        """Milvus's ``n`` nearest entities, the filter evaluated by Milvus; scores as Milvus computes them."""
        scores, keys = self.search(query[None], n, filters=None if among is None else among.filters)
        return Candidates.best_first(scores[0], keys[0])

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               filters: Mapping[str, list[Scalar]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, np.float32).reshape(-1, self.dim)
        expression = filter_expression(filters) if filters else ""
        scores = np.full((len(queries), k), -np.inf, np.float32)
        keys = np.full((len(queries), k), -1, np.int64)
        if k > MAX_TOPK:
            found = [self._page_through(q, k, expression) for q in queries]
        elif len(queries):
            found = [[(hit["distance"], hit["id"]) for hit in row] for row in self.client.search(
                self.collection, data=list(queries), limit=k, filter=expression, output_fields=[],
                search_params=self._search_params())]
        else:
            found = []
        for i, row in enumerate(found):
            if row:
                scores[i, :len(row)], keys[i, :len(row)] = zip(*row[:k])
        return scores, keys

    def _page_through(self, query: np.ndarray, k: int, expression: str) -> list[tuple[float, int]]:
        """The top k (> :data:`MAX_TOPK`) of one query, best first, through a Milvus search iterator."""
        iterator = self.client.search_iterator(self.collection, data=[query], batch_size=MAX_TOPK, limit=k,
                                               filter=expression, output_fields=[],
                                               search_params=self._search_params())
        out: list[tuple[float, int]] = []
        try:
            while batch := iterator.next():
                out.extend((hit["distance"], hit["id"]) for hit in batch)
        finally:
            iterator.close()
        return out

    def __len__(self) -> int:
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def close(self) -> None:
        if self._client is None:
            return
        self._client.close()
        self._client = None
        if self._lite is not None:  # the last user of a Milvus Lite database in this process stops its engine
            with _lite_lock:
                _lite_users[self._lite] -= 1
                if not _lite_users[self._lite]:
                    del _lite_users[self._lite]
                    _lite_servers().release_server(self._lite)
            self._lite = None

    def describe(self) -> dict[str, Any]:
        where = self.options.get("uri") or f"Milvus Lite {_lite_version()} (index folder)"
        return {"backend": self.name, **{k: v for k, v in self.options.items() if k != "uri"}, "where": where}


def _lite_version() -> str:
    try:
        return importlib.metadata.version("milvus-lite")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"
