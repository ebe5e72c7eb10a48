"""`c2kd serve --workers N`: forked workers over one port, readiness after the warm-up, graceful shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from searchkit import announced_port

QUERIES = ["a dog runs on the beach", "ein Hund läuft", "a man sleeps in the street"]
SRC = Path(__file__).resolve().parents[2] / "src"


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _children(pid: int) -> set[int]:
    """The running (not zombie) child processes of ``pid``."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(stat.parent.name))
    return out


def test_ready_is_503_until_the_warm_up_query_ran(served):
    """An app made with warmed=False answers 503 (with Retry-After, in the service's error format) on /api/ready
    until its start-up has run the warm-up query, then 200 with its pid; other routes answer meanwhile."""
    from c2kd.serve.app import ServeSettings, create_app

    _, index, _ = served
    app = create_app(ServeSettings(index=index), warmed=False)
    cold = TestClient(app)  # no lifespan: the start-up (and so the warm-up) has not run
    got = cold.get("/api/ready")
    assert got.status_code == 503 and got.headers["retry-after"] == "1"
    assert "warm-up" in got.json()["error"] and str(os.getpid()) in got.json()["error"]
    assert cold.get("/api/health").json()["ready"] is False
    assert cold.get("/api/search", params={"q": "a dog"}).status_code == 200
    with TestClient(app) as warm:  # the start-up runs the warm-up query in a thread
        deadline = time.monotonic() + 30
        while (got := warm.get("/api/ready")).status_code == 503:
            assert time.monotonic() < deadline, got.text
            time.sleep(0.02)
        assert got.status_code == 200 and got.json() == {"ready": True, "pid": os.getpid()}
        assert warm.get("/api/health").json()["ready"] is True


def test_zero_workers_and_a_busy_port_are_one_line_errors(served):
    from c2kd_testkit import assert_one_line_error, run_c2kd

    _, index, _ = served
    assert_one_line_error(run_c2kd("serve", index, "--workers", "0"), "--workers 0", "--workers 2")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_one_line_error(run_c2kd("serve", index, "--workers", "2", "--port", port),
                              f"port {port} on 127.0.0.1 is in use")


def _start(index: Path) -> subprocess.Popen:
    """``c2kd serve --workers 2 --port 0``: the OS chooses the port, the server prints it (:func:`announced_port`)."""
    command = [sys.executable, "-c", "from c2kd.cli import main; main()", "serve", str(index), "--port", "0",
               "--workers", "2", "--graceful-timeout", "20"]
    return subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(SRC)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _tcp_table() -> list[tuple[str, str, int, int, int]]:
    """The IPv4 TCP sockets of this machine: (local, remote) as ``HEX_IP:HEX_PORT``, send queue, receive queue, and
    inode (0 while a connection waits in a listening socket's accept queue)."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        tx, rx = (int(v, 16) for v in fields[4].split(":"))
        rows.append((fields[1], fields[2], tx, rx, int(fields[9])))
    return rows


def _wait_until_read(port: int, conn: socket.socket) -> None:
    """Until a worker has accepted ``conn`` and read all that was sent on it (the headers are parsed then: uvicorn
    parses what it reads at once): the client's bytes are acknowledged, and the server's end of the connection is
    owned by a process with nothing left unread."""
    ours = f"0100007F:{conn.getsockname()[1]:04X}"
    theirs = f"0100007F:{port:04X}"
    deadline = time.monotonic() + 30
    while True:
        table = _tcp_table()
        sent = [tx for local, remote, tx, _, _ in table if local == ours and remote == theirs]
        server = [(rx, inode) for local, remote, _, rx, inode in table if local == theirs and remote == ours]
        if sent == [0] and server and server[0][0] == 0 and server[0][1] != 0:
            return
        assert time.monotonic() < deadline, f"no worker read the request: client {sent}, server {server}"
        time.sleep(0.01)


def _wait_until_refused(port: int, proc: subprocess.Popen) -> None:
    """Until nothing listens on ``port`` any more (every worker has closed its socket: it is shutting down)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        except ConnectionRefusedError:
            return
        assert time.monotonic() < deadline, "the workers kept listening after SIGTERM"
        time.sleep(0.01)


def _ready_workers(proc: subprocess.Popen, base: str, count: int) -> set[int]:
    """Ask /api/ready on new connections until ``count`` distinct workers said 200; every other answer must be
    a refused connection (not listening yet) or a 503."""
    ready: set[int] = set()
    deadline = time.monotonic() + 90
    while len(ready) < count:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "the server exited"
        assert time.monotonic() < deadline, f"only workers {ready} became ready"
        try:
            got = httpx.get(f"{base}/api/ready", timeout=10)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        assert got.status_code in (200, 503), got.text
        if got.status_code == 200:
            ready.add(got.json()["pid"])
    return ready


def _half_sent_search(port: int, body: bytes) -> socket.socket:
    """A POST /api/search whose headers and first half of the body are sent: a request in flight."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=30)
    conn.sendall(b"POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body[: len(body) // 2])
    return conn


def _read_response(conn: socket.socket) -> tuple[int, dict]:
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(rest)


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs fork and SO_REUSEPORT")
def test_two_workers_answer_as_one_process_and_stop_gracefully(served, client):
    """`serve --workers 2` in a real process: two forked workers (children of the server) both become ready and
    answer; their results are the single-process app's; a killed worker is replaced; on SIGTERM a request in flight still gets its answer,
    then the workers and the server exit with 0."""
    _, index, _ = served
    proc = _start(index)
    try:
        port = announced_port(proc)
        base = f"http://127.0.0.1:{port}"
        pids = _ready_workers(proc, base, 2)
        assert all(_parent_of(pid) == proc.pid for pid in pids)
        for q in QUERIES:
            want = client.get("/api/search", params={"q": q, "k": 5}).json()["results"]
            for _ in range(4):  # new connections: spread over both workers
                got = httpx.get(f"{base}/api/search", params={"q": q, "k": 5}).json()["results"]
                assert [r["video_id"] for r in got] == [r["video_id"] for r in want]
                assert [r["score"] for r in got] == pytest.approx([r["score"] for r in want], abs=1e-5)
        health = httpx.get(f"{base}/api/health").json()
        assert health["pid"] in pids and health["ready"] is True

        lost = min(pids)  # a worker that dies is forked again by the server, on its socket
        os.kill(lost, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while len(pids := _children(proc.pid)) != 2 or lost in pids:
            assert time.monotonic() < deadline, f"workers now: {pids}"
            time.sleep(0.1)
        assert _ready_workers(proc, base, 2) == pids

        body = json.dumps({"query": QUERIES[0], "k": 3}).encode()
        conn = _half_sent_search(port, body)
        _wait_until_read(port, conn)  # a worker has read the headers: the request is in flight
        proc.send_signal(signal.SIGTERM)
        _wait_until_refused(port, proc)  # the workers are shutting down, waiting for this request
        conn.sendall(body[len(body) // 2:])
        status, answer = _read_response(conn)
        conn.close()
        assert status == 200 and len(answer["results"]) == 3
        assert proc.wait(timeout=30) == 0
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists(), f"worker {pid} is still running"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base}/api/ready", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def test_the_server_gives_each_request_thread_one_blas_thread():
    """limit_blas_threads sets numpy's OpenBLAS through its own call (the server's fix for spinning pools)."""
    import ctypes
    import re

    from c2kd.serve.threads import limit_blas_threads

    libs = sorted(set(re.findall(r"(/\S*openblas\S*\.so[\w.]*)", Path("/proc/self/maps").read_text())))
    getters = [getattr(ctypes.CDLL(p), n) for p in libs for n in ("scipy_openblas_get_num_threads64_",
                                                                    "openblas_get_num_threads") if hasattr(ctypes.CDLL(p), n)]
    if not getters:
        pytest.skip("numpy here does not use OpenBLAS")
    before = getters[0]()
    try:
        assert limit_blas_threads(1) >= 1 and getters[0]() == 1
    finally:
        limit_blas_threads(before)


def test_workers_refuse_backends_whose_client_fork_breaks():
    """A backend says whether forked workers may share it; the database clients (Qdrant, Milvus) may not."""
    from c2kd.errors import ConfigError
    from c2kd.index.base import backend_class
    from c2kd.serve.workers import check_workers

    for name in ("exact", "faiss"):
        check_workers(2, "cpu", backend_class(name))
    for name in ("qdrant", "milvus"):
        with pytest.raises(ConfigError, match=f"{name} backend .* --workers 1"):
            check_workers(2, "cpu", backend_class(name))
    check_workers(1, "cpu", backend_class("qdrant"))


def test_the_port_the_os_chose_for_the_workers_is_held_from_the_start():
    """``--workers N --port 0``: the port is bound (shared) when chosen and never let go before the workers bind
    beside it; a port asked for that another server of this user shares is still refused."""
    from c2kd.commands.serve import listening_socket
    from c2kd.errors import ConfigError
    from c2kd.serve.workers import reuseport_sockets

    first = listening_socket("127.0.0.1", 0, shared=True)
    port = first.getsockname()[1]
    sockets = [first]
    try:
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", port))  # nobody can take it meanwhile
        sockets = reuseport_sockets(first, 3)
        assert len(sockets) == 3 and {s.getsockname()[1] for s in sockets} == {port}
        with pytest.raises(ConfigError, match=f"port {port} on 127.0.0.1 is in use"):
            listening_socket("127.0.0.1", port, shared=True)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # listening
    finally:
        for sock in sockets:
            sock.close()
