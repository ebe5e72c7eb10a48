"""The Milvus backend on the Milvus engine itself (milvus-lite 2.5): native filters against the index's own filter
rule, results past one Milvus search's top-k limit, reopening and repairing the database in the index folder, a
second process refused, and a Milvus server reached by ``--option uri=`` (the same engine listening on a TCP port).

The parametrised backend suite (tests/index/test_index.py, test_moment_entries.py) runs on it as well."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from searchkit import brute_force

from c2kd.errors import ConfigError
from c2kd.index import VideoIndex
from c2kd.index import milvus_backend as mb
from c2kd.index.base import make_backend
from c2kd.index.filters import normalize_filter

DIM = 8


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _corpus(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, list[dict], np.ndarray]:
    rng = np.random.default_rng(seed)
    x, q = _unit(rng.standard_normal((n, DIM))), _unit(rng.standard_normal((3, DIM)))
    meta = [{"split": "test" if i % 3 == 0 else "train", "tags": ["a", "b"] if i % 4 == 0 else ["c"]}
            for i in range(n)]
    return [f"v{i:03d}" for i in range(n)], x, meta, q


def _empty_backend(tmp_path: Path, options: dict | None = None) -> mb.MilvusBackend:
    backend = make_backend("milvus", DIM, options)
    empty = np.zeros(0, np.int64)
    backend.load_state(tmp_path / "milvus", empty, lambda: np.zeros((0, DIM), np.float32), list)
    assert isinstance(backend, mb.MilvusBackend) and len(backend) == 0
    return backend


def _text_rule(meta: dict, filters: dict[str, list]) -> bool:
    """The index's filter rule, written out: every field has a value (or list item) equal as text to an accepted one."""
    for field, accepted in filters.items():
        value = meta.get(field)
        items = value if isinstance(value, list) else [value]
        if not {str(i) for i in items if i is not None} & {str(a) for a in accepted}:
            return False
    return True


def test_native_filters_match_the_index_rule(tmp_path):
    """Awkward field names and values (quotes, backslashes, other scripts, numbers, lists, missing fields) filtered
    inside Milvus select exactly the entries the index's rule selects, in exact score order."""
    rng = np.random.default_rng(1)
    n = 60
    x = _unit(rng.standard_normal((n, DIM)))
    values = ['a"b', "c\\d", "日本", "plain", 3, "3", "x y"]
    fields = ["split", 'we"ird', "back\\slash", "ünï code", "tags"]
    meta = []
    for i in range(n):
        m: dict = {f: values[(i * (j + 1)) % len(values)] for j, f in enumerate(fields[:4]) if (i + j) % 5}
        m["tags"] = [values[i % len(values)], values[(i + 3) % len(values)]] if i % 2 else []
        m["video_id"] = f"v{i}"
        meta.append(m)
    backend = _empty_backend(tmp_path)
    try:
        backend.add(np.arange(n, dtype=np.int64), x, meta)
        cases = [{"split": 'a"b'}, {'we"ird': ["c\\d", 3]}, {"back\\slash": "日本", "split": ["plain", "x y"]},
                 {"ünï code": ["3"]}, {"tags": ['a"b', "日本"]}, {"tags": [3], "split": "3"}, {"missing": "a"},
                 {"video_id": ["v1", "v7"]}]
        q = _unit(rng.standard_normal((2, DIM)))
        for raw in cases:
            filters = normalize_filter(raw)
            wanted = [i for i in range(n) if _text_rule(meta[i], filters)]
            scores, keys = backend.search(q, n + 5, filters=filters)
            for query, s, key in zip(q, scores, keys):
                order = sorted(wanted, key=lambda i, query=query: -float(x[i] @ query))
                assert key[:len(wanted)].tolist() == order, raw
                np.testing.assert_allclose(s[:len(wanted)], [x[i] @ query for i in order], atol=1e-5)
                assert (key[len(wanted):] == -1).all() and np.isneginf(s[len(wanted):]).all()
    finally:
        backend.close()


def test_more_results_than_one_milvus_search_returns(tmp_path, monkeypatch):
    """Past MAX_TOPK (16384 in Milvus; 5 here) the backend pages through a search iterator: same top k."""
    monkeypatch.setattr(mb, "MAX_TOPK", 5)
    _, x, meta, q = _corpus(40)
    backend = _empty_backend(tmp_path)
    try:
        backend.add(np.arange(40, dtype=np.int64), x, [{**m, "video_id": str(i)} for i, m in enumerate(meta)])
        for filters, keep in (({}, lambda i: True), ({"split": ["test"]}, lambda i: meta[i]["split"] == "test")):
            scores, keys = backend.search(q, 12, filters=filters or None)
            for query, s, key in zip(q, scores, keys):
                ref = sorted((i for i in range(40) if keep(i)), key=lambda i, query=query: -float(x[i] @ query))[:12]
                assert key.tolist() == ref
                np.testing.assert_allclose(s, [x[i] @ query for i in ref], atol=1e-5)
    finally:
        backend.close()


def test_reopen_uses_the_database_and_repairs_it_when_out_of_step(tmp_path, monkeypatch):
    ids, x, meta, q = _corpus(50)
    VideoIndex.build(tmp_path / "idx", ids, x, meta, backend="milvus").close()
    assert (tmp_path / "idx" / "milvus" / mb.DB_FILE).exists()
    uploads: list[int] = []
    add = mb.MilvusBackend.add
    monkeypatch.setattr(mb.MilvusBackend, "add", lambda self, keys, *a: (uploads.append(len(keys)), add(self, keys, *a)))
    with VideoIndex.open(tmp_path / "idx") as index:  # in step: nothing uploaded again
        assert uploads == [] and len(index.backend) == 50
        index.backend.client.delete(index.backend.collection, ids=[0, 1, 2])  # behind the index's back
    with VideoIndex.open(tmp_path / "idx") as index:  # out of step: every stored entry uploaded again
        assert uploads == [50] and len(index.backend) == 50
        for query, hits in zip(q, index.search(q, k=10)):
            assert [h.video_id for h in hits] == [r for r, _ in brute_force(x, ids, query, 10)]


def test_a_second_process_is_refused_with_the_fix(tmp_path):
    ids, x, meta, _ = _corpus(10)
    code = textwrap.dedent(f"""
        from c2kd.errors import ConfigError
        from c2kd.index import VideoIndex
        try:
            VideoIndex.open({str(tmp_path / "idx")!r})
        except ConfigError as exc:
            print(exc)
    """)
    with VideoIndex.build(tmp_path / "idx", ids, x, meta, backend="milvus"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                             check=True).stdout
    assert "milvus.db: the Milvus Lite database is open in another process" in out, out
    assert "--option uri=http://HOST:19530" in out


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory):
    """The Milvus engine serving a database over TCP, as a Milvus server does (``http://127.0.0.1:PORT``)."""
    mb._lite_servers()  # importable, as the backend imports it
    from milvus_lite.server import Server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Server(str(tmp_path_factory.mktemp("server") / "server.db"), address=f"127.0.0.1:{port}")
    assert server.init() and server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_a_server_by_uri(tmp_path, milvus_server):
    ids, x, meta, q = _corpus(80)
    options = {"uri": milvus_server, "collection": "by_uri", "index_type": "IVF_FLAT", "nlist": 4, "nprobe": 4}
    with VideoIndex.build(tmp_path / "idx", ids[:60], x[:60], meta[:60], backend="milvus", options=options) as index:
        assert not (tmp_path / "idx" / "milvus").exists()  # nothing of the database in the index folder
        assert index.describe()["where"] == milvus_server
        index.add(ids[60:], x[60:], meta[60:])
        index.remove(["v001", "v061"])
    kept = [i for i in range(80) if ids[i] not in ("v001", "v061")]
    with VideoIndex.open(tmp_path / "idx", options={"nprobe": 2}) as index:
        assert len(index.backend) == 78 and index.backend.options["nprobe"] == 2
    with VideoIndex.open(tmp_path / "idx") as index:  # nprobe = nlist: every cell probed, exact candidates
        for query, hits in zip(q, index.search(q, k=10, filters={"split": "test"})):
            ref = brute_force(x, ids, query, 10, keep=lambda i: i in kept and meta[i]["split"] == "test")
            assert [h.video_id for h in hits] == [r for r, _ in ref]
    other = VideoIndex.create(tmp_path / "other", DIM + 1, backend="milvus", options={"uri": milvus_server})
    other.close()
    with pytest.raises(ConfigError, match="holds 9-d vectors, this index 8-d: give each index its own --option collection"):
        VideoIndex.create(tmp_path / "third", DIM, backend="milvus", options={"uri": milvus_server})


def test_an_unreachable_server_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot reach the Milvus server http://127.0.0.1:1 .*start it"):
        VideoIndex.create(tmp_path / "idx", DIM, backend="milvus", options={"uri": "http://127.0.0.1:1"})
