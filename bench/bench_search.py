"""Search latency, throughput and recall: embedded exact vs faiss (approximate) vs Milvus vs brute-force numpy.

Side by side in one run, for corpora of 10k, 100k and 1M unit vectors (512-d float32 by default). The corpus is
clustered like real video embeddings (a few thousand topics plus noise); queries are noisy copies of corpus
vectors. All indexes go through the real ``VideoIndex`` code path (segments on disk, memory-mapped).

- brute force: ``X @ q`` for all videos, then a full ``argsort`` (the plain reference);
- exact: the default backend (chunked matrix product + ``argpartition``);
- faiss IVF: ``nlist`` ~ 1-4 sqrt(N) cells trained on a sample, ``nprobe`` cells scanned per query;
- milvus FLAT and IVF_FLAT (the same ``nlist``/``nprobe``): Milvus Lite in the index folder, i.e. the Milvus engine
  (milvus-lite 2.5) as a child process on this machine, reached over a Unix socket; the index asks it for
  ``candidates_per_hit`` (300) entries per video wanted and re-scores them, as for faiss. Up to ``--milvus-up-to``
  videos (its inserts run at a few thousand 512-d rows per second here).

Latency: one query per call (p50, p99 over ``--queries`` calls). Throughput: ``--batch`` queries per call.
Recall@10: the fraction of the exact top 10 that the method returns.

Usage: python bench/bench_search.py [--sizes 10000,100000,1000000] [--dim 512] [--queries 200] [--milvus-up-to N]

Moments at scale (``--moments 1000000,10000000 --checkpoint RUN --data DATASET``): an index of that many moment
entries, each the checkpoint's video tower over a real window (long videos of 30 minutes joined from the
dataset's items, each row held 1-4 s, with noise on the frame rows so repeated items differ), built through
the product's window embedding into float16 segments (resumable: a rerun continues), then given a faiss
IVF-PQ structure. Searched with real caption queries for the top 10 videos after grouping: p50 / p99 of one
query, recall@10 against the exact grouped search, build time, disk size, and the resident memory of a fresh
process that only serves (``VmRSS``: its heap plus the pages of the memory-mapped vectors it touched).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from c2kd.index import VideoIndex


def clustered(n: int, dim: int, seed: int, clusters: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):  # in blocks: no float64 temporaries of the whole corpus
        m = min(100_000, n - start)
        block = centres[rng.integers(clusters, size=m)] + rng.standard_normal((m, dim), dtype=np.float32) * (
            1.0 / np.sqrt(dim))
        out[start:start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def queries_for(x: np.ndarray, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = x[rng.choice(len(x), count, replace=False)] + rng.standard_normal((count, x.shape[1]), dtype=np.float32) * (
        0.7 / np.sqrt(x.shape[1]))
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def latencies(fn, queries: np.ndarray) -> np.ndarray:
    fn(queries[:1])  # warm up (page cache, lazy structures)
    out = []
    for q in queries:
        start = time.perf_counter()
        fn(q[None])
        out.append(time.perf_counter() - start)
    return np.asarray(out) * 1000


def throughput(fn, queries: np.ndarray, batch: int) -> float:
    start = time.perf_counter()
    done = 0
    for i in range(0, len(queries), batch):
        fn(queries[i:i + batch])
        done += len(queries[i:i + batch])
    return done / (time.perf_counter() - start)


def recall(found: list[list[str]], truth: list[list[str]]) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


class _LongVideos:
    """Feature rows of synthetic long videos, made on demand (a store for ``embed_entries``): each a seeded
    run of real items (``--data``), every row held 1-4 s, with Gaussian noise so repeated items differ."""

    def __init__(self, items: list[np.ndarray], seconds: int, noise: float, seed: int):
        self.items, self.seconds, self.noise, self.seed = items, seconds, noise, seed

    def _make(self, video_id: str) -> np.ndarray:
        rng = np.random.default_rng([self.seed, int(video_id[1:])])
        rows, total = [], 0
        while total < self.seconds:
            item = self.items[int(rng.integers(len(self.items)))]
            held = np.repeat(item, int(rng.integers(1, 5)), axis=0)
            rows.append(held)
            total += len(held)
        x = np.concatenate(rows)[: self.seconds].astype(np.float32)
        scale = np.linalg.norm(x, axis=1, keepdims=True) / np.sqrt(x.shape[1])
        return x + rng.standard_normal(x.shape, dtype=np.float32) * self.noise * scale

    def __getitem__(self, video_id: str) -> np.ndarray:
        return self._make(video_id)

    def times(self, video_id: str) -> np.ndarray:
        return np.arange(self.seconds, dtype=np.float64)


def _rss_of_serving(root: Path, queries: np.ndarray, options: dict, k: int) -> dict[str, float]:
    """Open the index in a fresh process, run the queries, report its memory (GB) from /proc."""
    import json
    import subprocess
    import sys

    np.save(root.parent / "rss-queries.npy", queries)
    code = (
        "import json, sys, numpy as np\n"
        "from c2kd.index import VideoIndex\n"
        f"index = VideoIndex.open({str(root)!r}, options={options!r})\n"
        f"q = np.load({str(root.parent / 'rss-queries.npy')!r})\n"
        f"for x in q: index.search(x[None], k={k})\n"
        "status = dict(line.split(':', 1) for line in open('/proc/self/status') if ':' in line)\n"
        "print(json.dumps({key: int(status[key].split()[0]) / 1024 ** 2 for key in "
        "('VmRSS', 'RssAnon', 'RssFile', 'VmHWM')}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def moment_scale(sizes: list[int], checkpoint: Path, data: Path, work: Path, n_queries: int, k: int,
                 nprobes: list[int], per_hit: list[int]) -> None:
    import pyarrow.parquet as pq
    from tqdm import tqdm

    from c2kd.data.features import FeatureStore, store_root
    from c2kd.index.exact import grouped_topk
    from c2kd.index.segments import read_manifest
    from c2kd.index.store import set_backend
    from c2kd.search.building import embed_entries
    from c2kd.search.model import load_search_model
    from c2kd.search.windows import Timeline, Windows

    model = load_search_model(checkpoint)
    store = FeatureStore(store_root(data))
    items = [np.asarray(store[v], np.float32) for v in store.ids]
    table = pq.read_table(data / "captions.parquet").to_pydict()
    texts = [t for t, sp in zip(table["text"], table["split"]) if sp == "test"]
    rng = np.random.default_rng(0)
    queries = model.embed_texts([texts[i] for i in rng.choice(len(texts), n_queries, replace=False)]).numpy()
    seconds, windows = 1800, Windows()
    per_video = len(windows.spans(Timeline.of(None, seconds)) or [])
    rows = []
    for n in sizes:
        videos = -(-n // per_video)
        lengths = "-".join(f"{x:g}" for x in windows.lengths)
        root = work / f"moments-{n}-w{lengths}"  # the entries depend on the windows
        print(f"\n## {videos:,} videos of {seconds // 60} min = {videos * per_video:,} moment entries "
              f"({per_video} per video) x {model.config.video.embed_dim}", flush=True)
        t0 = time.perf_counter()
        index = VideoIndex.open(root) if (root / "index.json").exists() else VideoIndex.create(
            root, model.config.video.embed_dim, dtype="float16", info={"checkpoint": str(checkpoint)})
        source = _LongVideos(items, seconds, noise=0.3, seed=n)
        todo = [f"v{i}" for i in range(videos) if f"v{i}" not in index]
        for part, entries in embed_entries(model, source, todo, windows, chunk=64, batch_size=512):
            index.add_entries(part, entries, [{"duration": float(seconds)} for _ in part])
        index.close()
        embed_s = time.perf_counter() - t0
        nlist = int(min(4096, max(64, 2 * np.sqrt(videos * per_video))))
        t0 = time.perf_counter()
        spec = read_manifest(root)["backend"]
        if spec["name"] != "faiss" or spec["options"].get("nlist") != nlist or not spec.get("state"):
            set_backend(root, "faiss", {"kind": "ivfpq", "nlist": nlist, "m": 64, "train_sample": 16 * nlist})
        faiss_s = time.perf_counter() - t0  # ~0 when a rerun finds the structure built
        disk = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2 ** 30
        exact = VideoIndex.open(root, options={})
        view = exact._view
        t0 = time.perf_counter()
        _, truth_v, _ = grouped_topk(view.all_vectors(exact.dim), queries, view.first, k, row_scores=False)
        exact_s = (time.perf_counter() - t0) / len(queries)
        truth = [set(row.tolist()) for row in truth_v]
        print(f"embedded in {embed_s:.0f} s, faiss IVF-PQ ({nlist} lists, 64 bytes) in {faiss_s:.0f} s, "
              f"{disk:.1f} GB on disk; exact grouped scan {exact_s * 1000:.0f} ms per query", flush=True)
        rows.append((n, "exact grouped scan (float16 memory map; per query of one batched pass)", exact_s * 1000, float("nan"), 1.0, None))
        settings = [(nprobe, c) for nprobe in nprobes for c in per_hit]
        for nprobe, c in tqdm(settings, desc="search settings"):
            options = {"nprobe": nprobe, "candidates_per_hit": c}
            index = VideoIndex.open(root, options=options)
            lat = latencies(lambda qs, idx=index: idx.search(qs, k=k), queries)
            got = [{index._view.position[h.video_id] for h in hits} for hits in index.search(queries, k=k)]
            rec = float(np.mean([len(g & t) / k for g, t in zip(got, truth)]))
            index.close()
            memory = _rss_of_serving(root, queries, options, k)
            rows.append((n, f"faiss IVF-PQ nprobe {nprobe}, {c * k} candidates re-ranked exactly",
                         float(np.median(lat)), float(np.percentile(lat, 99)), rec, memory))
        exact.close()
        print(f"build: {embed_s + faiss_s:.0f} s ({embed_s / max(videos * per_video, 1) * 1e6:.0f} us per entry "
              f"embedded, faiss {faiss_s:.0f} s); disk {disk:.1f} GB", flush=True)
    print("\n| moment entries | method | p50 ms | p99 ms | recall@10 videos | RSS GB serving (anon + file) |")
    print("|---:|---|---:|---:|---:|---|")
    for n, name, p50, p99, rec, memory in rows:
        mem = "" if memory is None else f"{memory['VmRSS']:.2f} ({memory['RssAnon']:.2f} + {memory['RssFile']:.2f})"
        print(f"| {n:,} | {name} | {p50:.1f} | {p99:.1f} | {rec:.3f} | {mem} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--moments", default=None, help="moment-entry corpus sizes, e.g. 1000000,10000000 (with "
                                                        "--checkpoint and --data)")
    parser.add_argument("--checkpoint", type=Path, default=Path("runs/quickstart/runs/c2kd-off-the-shelf-alpha0.2"))
    parser.add_argument("--data", type=Path, default=Path("runs/quickstart/data"))
    parser.add_argument("--nprobe", default="64,128", help="IVF-PQ cells scanned per query (moments)")
    parser.add_argument("--candidates-per-hit", default="100,300",
                        help="entries asked of faiss per video wanted, re-scored exactly (moments)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200, help="single-query calls per method (latency)")
    parser.add_argument("--batch", type=int, default=64, help="queries per call (throughput)")
    parser.add_argument("--throughput-queries", type=int, default=512)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--milvus-up-to", type=int, default=1_000_000,
                        help="largest corpus the Milvus rows are measured on (0: none)")
    parser.add_argument("--work", default=None, help="folder for the indexes (default: a temporary folder)")
    args = parser.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="c2kd-bench-search-"))
    if args.moments:
        moment_scale([int(s) for s in args.moments.split(",")], args.checkpoint, args.data, work, args.queries,
                      args.k, [int(s) for s in args.nprobe.split(",")],
                      [int(s) for s in args.candidates_per_hit.split(",")])
        return
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        t0 = time.perf_counter()
        x = clustered(n, args.dim, seed=n, clusters=max(64, int(2 * np.sqrt(n))))
        q = queries_for(x, max(args.queries, args.throughput_queries), seed=1)
        ids = [f"v{i}" for i in range(n)]
        print(f"\n## {n:,} videos x {args.dim} (corpus made in {time.perf_counter() - t0:.1f} s)", flush=True)
        nlist = int(max(16, min(4 * np.sqrt(n), n // 39, 1024)))
        nprobe = max(8, nlist // 32)
        k = args.k

        def brute(qs: np.ndarray) -> list[list[str]]:
            scores = qs @ x.T  # noqa: B023, F821 - called only within this iteration, before del x
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # noqa: B023 - as above
            return [[ids[i] for i in row] for row in order]  # noqa: B023 - as above

        t0 = time.perf_counter()
        exact = VideoIndex.build(work / f"exact-{n}", ids, x, backend="exact")
        exact_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        ivf = VideoIndex.build(work / f"ivf-{n}", ids, x, backend="faiss",
                               options={"kind": "ivf", "nlist": nlist, "nprobe": nprobe, "train_sample": 40 * nlist})
        ivf_build = time.perf_counter() - t0
        milvus = []
        for kind in ("FLAT", "IVF_FLAT") if n <= args.milvus_up_to else ():
            options = {"index_type": kind, **({"nlist": nlist, "nprobe": nprobe} if kind == "IVF_FLAT" else {})}
            t0 = time.perf_counter()
            index = VideoIndex.build(work / f"milvus-{kind}-{n}", ids, x, backend="milvus", options=options)
            milvus.append((kind, index, time.perf_counter() - t0))

        def via(index):
            return lambda qs: [[h.video_id for h in row] for row in index.search(qs, k=k)]  # noqa: B023 - as above

        methods = [("brute-force numpy (full sort)", brute, 0.0),
                   ("exact (VideoIndex default)", via(exact), exact_build),
                   (f"faiss IVF (nlist {nlist}, nprobe {nprobe})", via(ivf), ivf_build)]
        methods += [(f"milvus {kind}{f' (nlist {nlist}, nprobe {nprobe})' if kind == 'IVF_FLAT' else ''}, Milvus Lite",
                     via(index), build) for kind, index, build in milvus]
        lat_q = q[: args.queries if n < 1_000_000 else min(args.queries, 60)]
        thr_q = q[: args.throughput_queries if n < 1_000_000 else min(args.throughput_queries, 256)]
        truth = via(exact)(thr_q)
        base_p50 = None
        for name, fn, build in methods:
            lat = latencies(fn, lat_q)
            qps = throughput(fn, thr_q, args.batch)
            rec = recall(fn(thr_q), truth)
            p50 = float(np.median(lat))
            base_p50 = base_p50 or p50
            rows.append((n, name, build, p50, float(np.percentile(lat, 99)), base_p50 / p50, qps, rec, peak_rss_gb()))
            print(f"{name}: p50 {p50:.2f} ms, p99 {np.percentile(lat, 99):.2f} ms, {qps:.0f} q/s, "
                  f"recall@10 {rec:.3f}", flush=True)
        exact.close()
        ivf.close()
        for kind, index, _ in milvus:
            index.close()
            shutil.rmtree(work / f"milvus-{kind}-{n}", ignore_errors=True)
        del x
        shutil.rmtree(work / f"exact-{n}", ignore_errors=True)
        shutil.rmtree(work / f"ivf-{n}", ignore_errors=True)

    print("\n| videos | method | build s | p50 ms | p99 ms | speed-up vs brute (p50) | queries/s (batch "
          f"{args.batch}) | recall@10 | peak RSS GB |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for n, name, build, p50, p99, ratio, qps, rec, rss in rows:
        print(f"| {n:,} | {name} | {build:.1f} | {p50:.2f} | {p99:.2f} | {ratio:.1f}x | {qps:,.0f} | {rec:.3f} | "
              f"{rss:.1f} |")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
