"""Start-up of the command line and of the server, beside ``python -c pass`` (the floor) in the same run.

Rows (median over ``--runs`` fresh processes, wall time):
- ``python -c pass``, ``c2kd --help``, ``c2kd search --help``: what every command pays before it does anything;
- ``c2kd search INDEX QUERY``: one whole CLI search (model and index loaded, one query), and the time the search
  itself reports;
- ``c2kd serve INDEX``: seconds until it answers, then its first ``/api/search`` and the median of the next ones
  (a first query far slower than the rest means the server did not warm up).

Usage: python bench/bench_cli.py --index runs/quickstart/index [--runs 5] [--query "ein Hund rennt"]
(make the index with the commands the quickstart ends with)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

C2KD = [sys.executable, "-c", "from c2kd.cli import main; main()"]


def wall(command: list[str], runs: int) -> tuple[float, str]:
    """Median wall seconds of ``runs`` fresh processes, and the last one's output."""
    times, out = [], ""
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - start)
        out = proc.stdout
    return statistics.median(times), out


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_times(index: Path, query: str, queries: int = 10) -> tuple[float, float, float]:
    """Seconds until ``c2kd serve`` answers, its first search (ms) and the median of the next ``queries`` (ms)."""
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([*C2KD, "serve", str(index), "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api/search?" + urllib.parse.urlencode({"q": query, "k": 10})
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5).read()
                break
            except OSError:
                if proc.poll() is not None or time.perf_counter() - started > 300:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.1)
        ready = time.perf_counter() - started
        times = []
        for _ in range(queries + 1):
            start = time.perf_counter()
            json.loads(urllib.request.urlopen(url, timeout=60).read())
            times.append((time.perf_counter() - start) * 1000)
        return ready, times[0], statistics.median(times[1:])
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=Path("runs/quickstart/index"))
    parser.add_argument("--query", default="ein Hund rennt über eine Wiese")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env_note = f"{os.cpu_count()} CPUs"
    floor, _ = wall([sys.executable, "-c", "pass"], args.runs)
    rows = [("python -c pass", floor, "")]
    for name, extra in (("c2kd --help", ["--help"]), ("c2kd search --help", ["search", "--help"])):
        seconds, _ = wall([*C2KD, *extra], args.runs)
        rows.append((name, seconds, f"{seconds / floor:.0f}x the floor"))
    if args.index.exists():
        seconds, out = wall([*C2KD, "search", str(args.index), args.query, "--json"], args.runs)
        took = json.loads(out)["took_ms"] if out.strip().startswith("{") else float("nan")
        rows.append(("c2kd search INDEX QUERY (whole process)", seconds, f"the search itself {took:.1f} ms"))
        ready, first, rest = server_times(args.index, args.query)
        rows.append(("c2kd serve INDEX until it answers", ready, ""))
        rows.append(("first /api/search", first / 1000, f"{first / rest:.1f}x the median of the next 10 "
                                                          f"({rest:.1f} ms)"))
    else:
        print(f"(no index at {args.index}: the search and server rows are left out)", file=sys.stderr)
    print(f"## Start-up ({env_note}, median of {args.runs} runs)\n")
    print("| what | seconds | note |\n| --- | ---: | --- |")
    for name, seconds, note in rows:
        print(f"| {name} | {seconds:.3f} | {note} |")


if __name__ == "__main__":
    main()
