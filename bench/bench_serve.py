"""Loopback load test of ``c2kd serve``: latency and throughput at several client concurrencies, side by side.

Builds a small synthetic corpus, an untrained (random-weight) checkpoint and an index in a temporary folder,
starts the real server (``c2kd serve``, uvicorn) in a child process on 127.0.0.1 only, and sends search
requests from N concurrent clients. Every level is bounded by a request count and a time limit. The model is
untrained: the text tower's cost is real, the result quality is not the point here.

Usage: python bench/bench_serve.py [--videos 5000] [--concurrency 1,8,32] [--requests 600] [--max-seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

HOST = "127.0.0.1"  # loopback only, never another address


def make_fixture(root: Path, videos: int) -> tuple[Path, Path]:
    """Synthetic dataset + random checkpoint + exact index. Returns (index, dataset)."""
    import pyarrow.parquet as pq

    from c2kd.checkpoint import save_checkpoint
    from c2kd.data.synthetic import SyntheticConfig, generate_synthetic
    from c2kd.encoders.random_hf import make_random_text_model
    from c2kd.encoders.text import TextEncoderConfig
    from c2kd.encoders.video import VideoEncoderConfig
    from c2kd.model import ModelConfig, build_model
    from c2kd.search.building import build_index
    from c2kd.train.config import TrainConfig

    data = generate_synthetic(root / "data", SyntheticConfig(n_train=videos - 200, n_val=100, n_test=100,
                                                             feature_dim=64, captions_per_video=1,
                                                             languages=["en", "de"]))
    corpus = pq.read_table(data / "captions.parquet", columns=["text"]).column("text").to_pylist()
    text = make_random_text_model(root / "text", corpus, hidden=128, layers=2, heads=4)
    cfg = ModelConfig(text=TextEncoderConfig(name=str(text), embed_dim=256),
                      video=VideoEncoderConfig(feature_dim=64, embed_dim=256))
    ckpt = save_checkpoint(root / "ckpt", build_model(cfg), TrainConfig(data={"path": str(data)}, model=cfg))
    return build_index(ckpt, data, root / "index", progress=False), data


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(index: Path, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-c", "from c2kd.cli import main; main()", "serve", str(index), "--host", HOST,
           "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"http://{HOST}:{port}/api/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not answer /api/health within 120 s")


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def load(base: str, path: str, params: list[dict], concurrency: int, requests: int,
               max_seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    sent = 0
    stop = time.perf_counter() + max_seconds

    async def client(worker: int, http: httpx.AsyncClient) -> None:
        nonlocal errors, sent
        while sent < requests and time.perf_counter() < stop:
            p = params[sent % len(params)]
            sent += 1
            start = time.perf_counter()
            try:
                r = await http.get(path, params=p)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - start)
            errors += not ok

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        begin = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(concurrency)))
        elapsed = time.perf_counter() - begin
    lat = np.asarray(latencies) * 1000
    return {"requests": len(lat), "errors": errors, "p50": float(np.median(lat)), "p99": float(np.percentile(lat, 99)),
            "rps": len(lat) / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=5000)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--requests", type=int, default=600, help="requests per level (upper bound)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time limit per level")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="c2kd-bench-serve-"))
    proc = None
    try:
        t0 = time.perf_counter()
        index, _ = make_fixture(root, args.videos)
        print(f"fixture ({args.videos} videos) built in {time.perf_counter() - t0:.1f} s", flush=True)
        port = free_port()
        proc = start_server(index, port)
        base = f"http://{HOST}:{port}"
        words = ["dog", "cat", "car", "ball", "guitar", "horse", "runs", "jumps", "swims", "beach", "park", "snow"]
        rng = np.random.default_rng(0)
        queries = [{"q": " ".join(rng.choice(words, 4)), "k": 10} for _ in range(500)]
        levels = [int(c) for c in args.concurrency.split(",")]
        rows = []
        for endpoint, params in (("/api/health", [{}]), ("/api/search", queries)):
            for c in levels:
                asyncio.run(load(base, endpoint, params, c, min(50, args.requests), 10))  # warm-up
                res = asyncio.run(load(base, endpoint, params, c, args.requests, args.max_seconds))
                rows.append((endpoint, c, res))
                print(f"{endpoint}, {c} client(s): {res['rps']:.0f} requests/s, {res['errors']} errors",
                      file=sys.stderr, flush=True)
        rss = peak_rss_mb(proc.pid)
        print(f"\nserver peak RSS: {rss:.0f} MB; index of {args.videos} videos, 256-d; loopback {HOST}\n")
        print("| endpoint | clients | requests | errors | p50 ms | p99 ms | requests/s | vs 1 client |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        base_rps: dict[str, float] = {}
        for endpoint, c, r in rows:
            base_rps.setdefault(endpoint, r["rps"])
            print(f"| {endpoint} | {c} | {r['requests']} | {r['errors']} | {r['p50']:.1f} | {r['p99']:.1f} | "
                  f"{r['rps']:.0f} | {r['rps'] / base_rps[endpoint]:.2f}x |")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
