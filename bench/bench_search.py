"""Search latency, throughput and recall: embedded exact vs faiss (approximate) vs brute-force numpy.

Side by side in one run, for corpora of 10k, 100k and 1M unit vectors (512-d float32 by default). The corpus is
clustered like real video embeddings (a few thousand topics plus noise); queries are noisy copies of corpus
vectors. All indexes go through the real ``VideoIndex`` code path (segments on disk, memory-mapped).

- brute force: ``X @ q`` for all videos, then a full ``argsort`` (the plain reference);
- exact: the default backend (chunked matrix product + ``argpartition``);
- faiss IVF: ``nlist`` ~ 1-4 sqrt(N) cells trained on a sample, ``nprobe`` cells scanned per query.

Latency: one query per call (p50, p99 over ``--queries`` calls). Throughput: ``--batch`` queries per call.
Recall@10: the fraction of the exact top 10 that the method returns.

Usage: python bench/bench_search.py [--sizes 10000,100000,1000000] [--dim 512] [--queries 200]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200, help="single-query calls per method (latency)")
    parser.add_argument("--batch", type=int, default=64, help="queries per call (throughput)")
    parser.add_argument("--throughput-queries", type=int, default=512)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--work", default=None, help="folder for the indexes (default: a temporary folder)")
    args = parser.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="c2kd-bench-search-"))
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

        def via(index):
            return lambda qs: [[h.video_id for h in row] for row in index.search(qs, k=k)]  # noqa: B023 - as above

        methods = [("brute-force numpy (full sort)", brute, 0.0),
                   ("exact (VideoIndex default)", via(exact), exact_build),
                   (f"faiss IVF (nlist {nlist}, nprobe {nprobe})", via(ivf), ivf_build)]
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
