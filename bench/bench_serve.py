"""Loopback load test of ``c2kd serve`` with 1 and with 2 workers, side by side: requests/s, p50, p99, memory.

Builds a small synthetic corpus, an untrained (random-weight) checkpoint and an index in a temporary folder,
then, for each number of workers, starts the real server (``c2kd serve --workers N``, uvicorn) in a child
process on 127.0.0.1 only, waits until N distinct workers answer 200 on /api/ready, and sends ``GET /api/search``
from 50 concurrent keep-alive clients for a fixed time. The model is untrained: the text tower's cost is real,
the result quality is not the point here.

The clients are one asyncio loop speaking plain HTTP/1.1 over asyncio streams (no HTTP library: httpx would
need about as much CPU as the server); their CPU time is measured and printed, since on a small machine the load
generator shares the cores with the server. Memory is read from /proc/PID/smaps_rollup after the load: RSS,
PSS (shared pages divided among the processes mapping them) and USS (pages of that process alone), for every
process of the server (with several workers: the parent that loaded the model, then the workers it forked).

Usage: python bench/bench_serve.py [--videos 5000] [--workers 1,2] [--clients 50] [--seconds 20]
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
    from c2kd.encoders.text.tower import TextEncoderConfig
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


def start_server(index: Path, port: int, workers: int, log: Path) -> tuple[subprocess.Popen, list[int]]:
    """``c2kd serve --workers N`` in a child process; returns it once N distinct workers are ready, and their
    pids (the server's own pid for one worker)."""
    cmd = [sys.executable, "-c", "from c2kd.cli import main; main()", "serve", str(index), "--host", HOST,
           "--port", str(port), "--workers", str(workers)]
    with log.open("w") as out:  # a file, not a pipe nobody reads: the access log would fill it and block
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)
    ready: set[int] = set()
    deadline = time.time() + 180
    while len(ready) < workers:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()[-2000:]}")
        if time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"only {len(ready)} of {workers} workers were ready within 180 s")
        try:
            got = httpx.get(f"http://{HOST}:{port}/api/ready", timeout=5)
            if got.status_code == 200:
                ready.add(got.json()["pid"])
                continue
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return proc, sorted(ready)


def memory_mb(pid: int) -> dict[str, float]:
    """RSS, PSS and USS (private clean + dirty) of one process, in MB, from /proc/PID/smaps_rollup."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return {"rss": fields["Rss"] / 1024, "pss": fields["Pss"] / 1024,
            "uss": (fields["Private_Clean"] + fields["Private_Dirty"]) / 1024}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


async def _client(port: int, paths: list[bytes], stop: float, latencies: list[float], counts: dict[str, int],
                  offset: int) -> None:
    """One keep-alive connection sending GETs one after another until ``stop``."""
    reader, writer = await asyncio.open_connection(HOST, port)
    i = offset
    try:
        while time.perf_counter() < stop:
            path = paths[i % len(paths)]
            i += 1
            begin = time.perf_counter()
            writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: bench\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - begin)
            counts["ok" if head.startswith(b"HTTP/1.1 200") else "errors"] += 1
    except (OSError, asyncio.IncompleteReadError):
        counts["errors"] += 1
    finally:
        writer.close()


async def load(port: int, paths: list[bytes], clients: int, seconds: float) -> dict:
    """``clients`` connections for ``seconds``: requests, errors, requests/s, p50 and p99 in ms."""
    latencies: list[float] = []
    counts = {"ok": 0, "errors": 0}
    begin = time.perf_counter()
    await asyncio.gather(*(_client(port, paths, begin + seconds, latencies, counts, c * 7) for c in range(clients)))
    elapsed = time.perf_counter() - begin
    lat = np.asarray(latencies) * 1000
    return {"requests": counts["ok"], "errors": counts["errors"], "rps": counts["ok"] / elapsed,
            "p50": float(np.median(lat)), "p99": float(np.percentile(lat, 99))}


def measure(index: Path, workers: int, paths: list[bytes], clients: int, seconds: float, log: Path) -> dict:
    """Start a server with ``workers`` workers, warm it for 3 s, load it for ``seconds``, read its memory."""
    port = free_port()
    proc, pids = start_server(index, port, workers, log)
    try:
        asyncio.run(load(port, paths, clients, 3.0))
        processes = [proc.pid] + [p for p in pids if p != proc.pid]
        cpu_before = {p: cpu_seconds(p) for p in processes}
        client_before = time.process_time()
        result = asyncio.run(load(port, paths, clients, seconds))
        result["client_cpu"] = (time.process_time() - client_before) / seconds
        result["cpu"] = {p: (cpu_seconds(p) - cpu_before[p]) / seconds for p in processes}
        result["memory"] = {p: memory_mb(p) for p in processes}
        result["parent"] = proc.pid
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def report(rows: list[tuple[int, dict]], args: argparse.Namespace) -> None:
    """The throughput table, the memory of every process, and what each worker beyond the first adds."""
    first = rows[0][1]
    print(f"\n{args.clients} clients on loopback {HOST}, {args.seconds:g} s per setting; index of {args.videos} "
          f"videos, 256-d; {os.cpu_count()} cores shared by the server and the load generator\n")
    print("| workers | requests | errors | requests/s | vs first | p50 ms | p99 ms | server CPU (cores) | "
          "load generator CPU (cores) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workers, r in rows:
        print(f"| {workers} | {r['requests']} | {r['errors']} | {r['rps']:.0f} | {r['rps'] / first['rps']:.2f}x | "
              f"{r['p50']:.1f} | {r['p99']:.1f} | {sum(r['cpu'].values()):.2f} | {r['client_cpu']:.2f} |")
    print("\n| workers | process | pid | RSS MB | PSS MB | USS MB | CPU (cores) |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    totals = {}
    for workers, r in rows:
        for pid, mem in r["memory"].items():
            role = "server (one process)" if workers == 1 else ("parent (loads, forks)" if pid == r["parent"]
                                                               else "worker")
            print(f"| {workers} | {role} | {pid} | {mem['rss']:.0f} | {mem['pss']:.0f} | {mem['uss']:.0f} | "
                  f"{r['cpu'][pid]:.2f} |")
        totals[workers] = sum(m["pss"] for m in r["memory"].values())
    print("\nserver memory (sum of PSS over its processes): "
          + ", ".join(f"{w} worker(s) {t:.0f} MB" for w, t in totals.items()))
    if 1 in totals:
        one_rss = dict(rows)[1]["memory"][dict(rows)[1]["parent"]]["rss"]
        for workers, total in totals.items():
            if workers > 1:
                added = (total - totals[1]) / (workers - 1)
                print(f"{workers} workers: each worker beyond the first adds {added:.0f} MB = {added / one_rss:.0%} "
                      f"of the one-worker server's RSS ({one_rss:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=5000)
    parser.add_argument("--workers", default="1,2", help="settings to compare, e.g. 1,2")
    parser.add_argument("--clients", type=int, default=50, help="concurrent keep-alive connections")
    parser.add_argument("--seconds", type=float, default=20.0, help="load time per setting (after 3 s of warm-up)")
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy the servers' logs to this folder")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="c2kd-bench-serve-"))
    try:
        t0 = time.perf_counter()
        index, _ = make_fixture(root, args.videos)
        print(f"fixture ({args.videos} videos) built in {time.perf_counter() - t0:.1f} s", flush=True)
        words = ["dog", "cat", "car", "ball", "guitar", "horse", "runs", "jumps", "swims", "beach", "park", "snow"]
        rng = np.random.default_rng(0)
        paths = [f"/api/search?q={'+'.join(rng.choice(words, 4))}&k=10".encode() for _ in range(500)]
        rows = []
        for workers in (int(w) for w in args.workers.split(",")):
            result = measure(index, workers, paths, args.clients, args.seconds, root / f"serve-{workers}.log")
            rows.append((workers, result))
            print(f"{workers} worker(s): {result['rps']:.0f} requests/s, {result['errors']} errors", file=sys.stderr,
                  flush=True)
            if args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                shutil.copy(root / f"serve-{workers}.log", args.keep_logs)
        report(rows, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
