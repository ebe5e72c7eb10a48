"""Index backends and persistence, checked against a plain brute-force reference."""

from __future__ import annotations

import json

import numpy as np
import pytest
from searchkit import brute_force, clustered_corpus

from c2kd.errors import ConfigError, DataError
from c2kd.index import VideoIndex
from c2kd.index.exact import topk_inner_product
from c2kd.index.segments import MANIFEST, SEGMENT_DIR

#: milvus: Milvus Lite in the index folder, the Milvus engine itself (FLAT: every search scans all entries)
BACKENDS = [("exact", {}), ("faiss", {"kind": "ivf", "nlist": 8, "nprobe": 8}),
            ("faiss", {"kind": "hnsw", "M": 16}), ("qdrant", {"location": ":memory:"}), ("milvus", {})]
BACKEND_IDS = ["exact", "faiss-ivf", "faiss-hnsw", "qdrant", "milvus"]


def _corpus(n=300, dim=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = [f"vid{i:04d}" for i in range(n)]
    meta = [{"split": "test" if i % 3 == 0 else "train", "dataset": "a" if i % 2 else "b",
             "tags": ["cooking", "outdoor"] if i % 5 == 0 else ["indoor"]} for i in range(n)]
    q = rng.standard_normal((7, dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return ids, x, meta, q


@pytest.mark.parametrize("n,k,chunk", [(1, 1, 7), (10, 3, 4), (257, 10, 64), (300, 300, 1000), (50, 80, 16)])
def test_topk_matches_sorting(n, k, chunk):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    q = rng.standard_normal((3, 8)).astype(np.float32)
    scores, rows = topk_inner_product(x, q, k, chunk=chunk)
    for i in range(3):
        ref = brute_force(x, list(range(n)), q[i], k)
        assert [r for r, _ in ref] == rows[i].tolist()
        np.testing.assert_allclose(scores[i], [s for _, s in ref], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", [1, 10, 50])
def test_exact_index_equals_brute_force(tmp_path, k):
    ids, x, meta, q = _corpus()
    index = VideoIndex.build(tmp_path / "idx", ids, x, meta)
    for query, hits in zip(q, index.search(q, k=k)):
        ref = brute_force(x, ids, query, k)
        assert [h.video_id for h in hits] == [r for r, _ in ref]
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in ref], rtol=1e-5, atol=1e-6)
        assert [h.rank for h in hits] == list(range(1, k + 1))


@pytest.mark.parametrize("backend,options", BACKENDS, ids=BACKEND_IDS)
def test_filters_match_reference(tmp_path, monkeypatch, backend, options):
    import c2kd.index.search as search

    monkeypatch.setattr(search, "EXACT_SUBSET_LIMIT", 10)  # make approximate backends filter themselves
    ids, x, meta, q = _corpus(n=120)
    index = VideoIndex.build(tmp_path / "idx", ids, x, meta, backend=backend, options=options)
    q = q[:4]
    cases = [({"split": "test"}, lambda m: m["split"] == "test"),
             ({"tags": "cooking", "dataset": ["a"]}, lambda m: "cooking" in m["tags"] and m["dataset"] == "a"),
             ({"split": ["test", "train"], "tags": ["outdoor", "indoor"]}, lambda m: True),
             ({"split": "nope"}, lambda m: False)]
    for filters, keep in cases:
        hits = index.search(q, k=5, filters=filters)
        for query, row in zip(q, hits):
            assert all(keep(h.metadata) for h in row)
            ref = brute_force(x, ids, query, 5, keep=lambda i, keep=keep: keep(meta[i]))
            if backend == "exact":
                assert [h.video_id for h in row] == [r for r, _ in ref]
            elif backend != "faiss" or options["kind"] != "ivf":  # graph/db: all matching ids reachable here
                assert len({h.video_id for h in row} & {r for r, _ in ref}) >= min(4, len(ref))
    index.close()


@pytest.mark.parametrize("backend,options", BACKENDS, ids=BACKEND_IDS)
def test_persistence_round_trip(tmp_path, backend, options):
    ids, x, meta, q = _corpus(n=150)
    if backend == "qdrant":
        options = {}  # embedded on disk, inside the index folder
    index = VideoIndex.build(tmp_path / "idx", ids, x, meta, backend=backend, options=options,
                             info={"checkpoint": "somewhere"})
    before = index.search(q, k=10)
    index.close()
    reopened = VideoIndex.open(tmp_path / "idx")
    after = reopened.search(q, k=10)
    assert [[h.video_id for h in r] for r in before] == [[h.video_id for h in r] for r in after]
    assert reopened.metadata("vid0003") == meta[3]
    np.testing.assert_allclose(reopened.vector("vid0003"), x[3], rtol=1e-6)
    assert reopened.info["checkpoint"] == "somewhere" and len(reopened) == 150
    manifest = json.loads((tmp_path / "idx" / MANIFEST).read_text())
    if backend == "faiss":
        assert (tmp_path / "idx" / manifest["backend"]["state"] / "faiss.index").exists()
    if backend in ("qdrant", "milvus"):  # the live database, in a folder named after the backend
        assert manifest["backend"]["state"] == backend and (tmp_path / "idx" / backend).is_dir()
    reopened.close()


@pytest.mark.parametrize("backend,options", BACKENDS, ids=BACKEND_IDS)
def test_add_remove_without_rebuild(tmp_path, backend, options):
    ids, x, meta, q = _corpus(n=160)
    if backend == "qdrant":
        options = {}
    index = VideoIndex.build(tmp_path / "idx", ids[:100], x[:100], meta[:100], backend=backend, options=options)
    assert index.add(ids[100:110], x[100:110], meta[100:110]) == 10  # a segment no change below touches
    untouched = json.loads((tmp_path / "idx" / MANIFEST).read_text())["segments"][-1]["name"]
    untouched_file = tmp_path / "idx" / SEGMENT_DIR / f"{untouched}.npy"
    untouched_inode = untouched_file.stat().st_ino
    assert index.add(ids[110:], x[110:], meta[110:]) == 50
    removed = ["vid0001", "vid0120", "vid0150"]
    assert index.remove(removed) == 3
    with pytest.raises(DataError, match="not in"):
        index.remove(["vid0001"])
    assert index.remove(["vid0001", "vid0002"], missing_ok=True) == 1
    removed.append("vid0002")
    with pytest.raises(DataError, match="already in"):
        index.add(["vid0005"], x[5:6])
    newer = x[6] * -1  # replace a video's embedding: the query that found it must not any more
    index.add(["vid0006"], newer[None], [{"split": "new"}], replace=True)
    index.close()

    index = VideoIndex.open(tmp_path / "idx")
    keep = [i for i in range(160) if ids[i] not in removed]
    vectors = x.copy()
    vectors[6] = newer
    assert sorted(index.ids) == sorted(ids[i] for i in keep) and len(index) == len(keep)
    assert index.metadata("vid0006") == {"split": "new"}
    exact_like = backend in ("exact", "qdrant", "milvus") or options.get("kind") == "hnsw"
    for query, hits in zip(q, index.search(q, k=10)):
        ref = brute_force(vectors, ids, query, 10, keep=lambda i: ids[i] not in removed)
        got = [h.video_id for h in hits]
        assert not set(got) & set(removed)
        if exact_like:
            assert len(set(got) & {r for r, _ in ref}) >= 9
    # the untouched first segment was not rewritten; the files of replaced segments are gone
    manifest = json.loads((tmp_path / "idx" / MANIFEST).read_text())
    files = {p.name.split(".")[0] for p in (tmp_path / "idx" / SEGMENT_DIR).iterdir()}
    assert files == {s["name"] for s in manifest["segments"]}
    assert manifest["count"] == len(keep)
    assert untouched in files and untouched_file.stat().st_ino == untouched_inode  # the same file, not rewritten
    index.close()


def test_interrupted_update_leaves_previous_state(tmp_path, monkeypatch):
    ids, x, meta, _q = _corpus(n=60)
    index = VideoIndex.build(tmp_path / "idx", ids[:50], x[:50], meta[:50], backend="faiss",
                             options={"nlist": 4, "nprobe": 4})
    import c2kd.index.store as store

    def boom(*args, **kwargs):
        raise KeyboardInterrupt("killed while switching the manifest")

    monkeypatch.setattr(store, "write_manifest", boom)
    with pytest.raises(KeyboardInterrupt):
        index.add(ids[50:], x[50:], meta[50:])
    monkeypatch.undo()
    reopened = VideoIndex.open(tmp_path / "idx")
    assert len(reopened) == 50 and "vid0055" not in reopened
    reopened.add(ids[50:], x[50:], meta[50:])  # the next writer cleans the orphans of the killed one
    names = {p.name.split(".")[0] for p in (tmp_path / "idx" / SEGMENT_DIR).iterdir()}
    assert len(names) == 2 and len(reopened) == 60
    backends = [p.name for p in (tmp_path / "idx").glob("backend-*")]
    assert len(backends) == 1


@pytest.mark.parametrize("backend,options", BACKENDS[:2], ids=BACKEND_IDS[:2])
def test_writers_of_two_handles_keep_each_others_changes(tmp_path, backend, options):
    """Two handles opened before either writes (two processes running `c2kd index add`/`remove` one after the
    other): each change starts from what the other committed, and deletes none of its files."""
    ids, x, meta, q = _corpus(n=90)
    VideoIndex.build(tmp_path / "idx", ids[:50], x[:50], meta[:50], backend=backend, options=options).close()
    first, second = VideoIndex.open(tmp_path / "idx"), VideoIndex.open(tmp_path / "idx")
    first.add(ids[50:70], x[50:70], meta[50:70])
    second.add(ids[70:], x[70:], meta[70:])
    first.remove(ids[:10])
    with pytest.raises(DataError, match="already in"):
        second.add(ids[55:56], x[55:56])  # added by the other handle
    first.close()
    second.close()
    with VideoIndex.open(tmp_path / "idx") as index:
        assert sorted(index.ids) == ids[10:]
        for query, hits in zip(q, index.search(q, k=5)):
            ref = brute_force(x, ids, query, 5, keep=lambda i: i >= 10)
            assert [h.video_id for h in hits][:1] == [r for r, _ in ref][:1]


def test_faiss_recall_on_clustered_corpus(tmp_path):
    x, q = clustered_corpus(3000, 48, clusters=40, seed=1)
    ids = [str(i) for i in range(len(x))]
    exact = VideoIndex.build(tmp_path / "exact", ids, x)
    truth = [{h.video_id for h in row} for row in exact.search(q, k=10)]
    for options in ({"kind": "ivf", "nprobe": 8}, {"kind": "ivfpq", "nprobe": 8, "m": 8},
                    {"kind": "hnsw", "M": 16}):
        approx = VideoIndex.build(tmp_path / options["kind"], ids, x, backend="faiss", options=options)
        got = approx.search(q, k=10)
        recall = np.mean([len(t & {h.video_id for h in row}) / 10 for t, row in zip(truth, got)])
        assert recall >= 0.9, (options, recall)
        for query, row in zip(q, got):  # candidates are re-scored exactly: compressed codes never show
            np.testing.assert_allclose([h.score for h in row], x[[int(h.video_id) for h in row]] @ query,
                                       rtol=1e-5, atol=1e-5)
        if options["kind"] == "ivf":  # fewer probes -> lower recall: the setting really reaches faiss
            low = VideoIndex.open(tmp_path / "ivf", options={"nprobe": 1}).search(q, k=10)
            low_recall = np.mean([len(t & {h.video_id for h in row}) / 10 for t, row in zip(truth, low)])
            assert low_recall < recall


def test_errors_are_clear(tmp_path):
    _ids, x, _meta, q = _corpus(n=20)
    with pytest.raises(ConfigError, match="unknown index backend"):
        VideoIndex.create(tmp_path / "a", dim=4, backend="elastic")
    index = VideoIndex.create(tmp_path / "b", dim=24)
    with pytest.raises(DataError, match="24-d"):
        index.add(["a"], np.ones((1, 5), np.float32))
    with pytest.raises(DataError, match="twice"):
        index.add(["a", "a"], x[:2])
    with pytest.raises(DataError, match="NaN"):
        index.add(["a"], np.full((1, 24), np.nan, np.float32))
    with pytest.raises(DataError, match="not a c2kd index"):
        VideoIndex.open(tmp_path / "nothing-here")
    with pytest.raises(DataError, match="24-d"):
        index.search(np.ones((1, 3), np.float32))
    assert index.search(q, k=3) == [[] for _ in q]  # empty index: no results, no error


def test_row_reader_reads_what_the_memory_map_holds(tmp_path):
    from c2kd.index.blocks import RowReader

    x = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float16)
    np.save(tmp_path / "m.npy", x)
    reader = RowReader(tmp_path / "m.npy")
    rows = np.array([7, 3, 4, 5, 49, 0, 5, 48])  # unsorted, runs, a repeat, both ends
    np.testing.assert_array_equal(reader.read(rows), x[rows])
    assert reader.read(np.zeros(0, np.int64)).shape == (0, 8)
    reader.close()


def test_rows_of_several_files_read_as_one_matrix(tmp_path, monkeypatch):
    import c2kd.index.blocks as blocks

    rng = np.random.default_rng(1)
    parts = [rng.standard_normal((n, 6)).astype(np.float16) for n in (40, 1, 25)]
    for i, x in enumerate(parts):
        np.save(tmp_path / f"{i}.npy", x)
    readers = [blocks.RowReader(tmp_path / f"{i}.npy") for i in range(3)]
    starts = np.array([0, 40, 41, 66])
    whole = np.concatenate(parts)
    # unsorted, repeats, runs, rows just within and beyond the gap, across the file boundaries
    rows = np.array([65, 0, 39, 40, 41, 3, 3, 20, 20 + blocks.READ_GAP, 21 + 2 * blocks.READ_GAP, 40, 1])
    for gap in (0, blocks.READ_GAP, 1000):
        monkeypatch.setattr(blocks, "READ_GAP", gap)
        np.testing.assert_array_equal(blocks.read_rows(readers, starts, rows), whole[rows])
    assert blocks.read_rows(readers, starts, np.zeros(0, np.int64)).shape == (0, 6)
    for reader in readers:
        reader.close()


def test_searches_during_add_remove_and_refresh_each_see_one_whole_state(tmp_path):
    """Searches in threads while one thread adds, removes and replaces videos, and while a second handle of the
    same folder reloads the committed changes (``refresh``): no search fails, and every answer is the brute-force
    top 5 of one of the states the index went through (never a mix of two)."""
    import threading
    import time

    ids, x, meta, q = _corpus(n=120)
    root = tmp_path / "idx"
    index = VideoIndex.build(root, ids[:60], x[:60], meta[:60])
    other = VideoIndex.open(root)
    # the last state is reached again and again: a replace commits twice (videos 20-29 out, then back in a new
    # segment), and each time rewrites and deletes the segment that held them, the files a refresh may be reading
    states = [set(range(60)), set(range(90)), set(range(10, 90)), set(range(10, 120)), set(range(30, 120)),
              set(range(20, 120))]
    queries = q[:3]
    allowed = [{tuple(v for v, _ in brute_force(x, ids, query, 5, keep=lambda i, s=s: i in s)) for s in states}
               for query in queries]
    done, failures, answers = threading.Event(), [], 0

    def change() -> None:
        try:
            index.add(ids[60:90], x[60:90], meta[60:90])
            index.remove(ids[:10])
            index.add(ids[90:120], x[90:120], meta[90:120])
            index.remove(ids[10:20])
            for _ in range(10):
                index.add(ids[20:30], x[20:30], meta[20:30], replace=True)
        finally:
            done.set()

    def search(handle: VideoIndex, refresh: bool) -> None:
        nonlocal answers
        while True:
            finished = done.is_set()
            try:
                if refresh:
                    handle.refresh()
                for i, hits in enumerate(handle.search(queries, k=5)):
                    got = tuple(h.video_id for h in hits)
                    if got not in allowed[i]:
                        failures.append(got)
                answers += 1
            except Exception as exc:  # noqa: BLE001 - any failure of a concurrent search is the finding
                failures.append(repr(exc))
            if finished:
                return
            time.sleep(0.002)  # searches back to back on 2 cores would keep the writer out for minutes

    threads = [threading.Thread(target=search, args=(index, False)), threading.Thread(target=search, args=(index, False)),
               threading.Thread(target=search, args=(other, True)), threading.Thread(target=change)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not failures, failures[:3]
        assert answers >= 3
        # both handles end in the last state
        other.refresh()
        for handle in (index, other):
            for i, hits in enumerate(handle.search(queries, k=5)):
                final = tuple(v for v, _ in brute_force(x, ids, queries[i], 5, keep=lambda j: j in states[-1]))
                assert tuple(h.video_id for h in hits) == final
    finally:
        index.close()
        other.close()
