"""Several serving processes over one port: ``c2kd serve --workers N`` (Linux, macOS: needs ``fork``).

The parent loads the model and opens the index once, then forks N workers. Each worker runs its own uvicorn
server and event loop, so requests are served by N Python interpreters in parallel, while the memory stays
shared: the index's vectors are memory maps of the segment files (one copy in the OS page cache, whatever the
number of workers) and the model's weights, the imported modules and the index's tables are the parent's pages,
shared copy-on-write until a worker writes them. Each worker starts its own embedding thread, runs its warm-up
query (``/api/ready`` answers 503 until then) and uses ``cores // N`` torch threads, so N workers do not fight
over the cores.

Each worker accepts on its own listening socket, all bound to the same port with ``SO_REUSEPORT``: the kernel
spreads connections over the workers (a single shared socket lets the first worker woken take every waiting
connection). The parent keeps the sockets: a worker that dies is forked again on the same socket.

SIGTERM or SIGINT to the parent: it tells every worker to stop (SIGTERM); each one stops accepting, lets the
requests in flight finish (at most ``graceful_timeout`` seconds), and exits; the parent exits when all have.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from c2kd.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from c2kd.index.base import Backend

log = logging.getLogger("c2kd.serve.workers")

#: a worker that exits on its own is forked again, at most this many times in RESTART_WINDOW seconds
MAX_RESTARTS = 3
RESTART_WINDOW = 60.0
#: seconds the parent waits beyond the graceful timeout before killing a worker that does not stop
KILL_MARGIN = 5.0


@dataclass(frozen=True)
class WorkerSettings:
    """How ``c2kd serve`` runs its workers."""

    workers: int
    host: str
    port: int
    graceful_timeout: float = 30.0
    log_level: str = "info"

    @property
    def torch_threads(self) -> int:
        """Intra-op threads per worker: the cores shared out (at least one)."""
        return max(1, (os.cpu_count() or 1) // self.workers)


def check_workers(workers: int, device: str, backend: Backend | type[Backend] | None) -> None:
    """Refuse a number of workers this machine or index (its ``backend``, once opened) cannot run, naming the fix."""
    if workers < 1:
        raise ConfigError(f"--workers {workers}: give 1 or more serving processes, e.g. --workers 2")
    if workers == 1:
        return
    if not hasattr(os, "fork") or not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError("--workers above 1 needs fork() and SO_REUSEPORT (Linux, macOS); use --workers 1 here")
    if device != "cpu":
        raise ConfigError(f"--workers {workers} with --device {device}: a GPU context cannot be shared by forked "
                          "processes; use --workers 1 (one server per GPU) or --device cpu")
    if backend is not None and not backend.fork_safe:
        raise ConfigError(f"--workers {workers}: an index on the {backend.name} backend holds a database client "
                          f"that forked processes cannot share; use --workers 1 ({backend.name} itself serves in "
                          "parallel), or build the index with --backend exact or faiss")


def reuseport_sockets(first: socket.socket, count: int) -> list[socket.socket]:
    """``first`` (bound with ``SO_REUSEPORT``) and ``count - 1`` more sockets bound to its address the same way,
    all listening: one per worker."""
    address = first.getsockname()
    out = [first]
    for _ in range(count - 1):
        sock = socket.socket(first.family, first.type, first.proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            sock.close()
            for other in out:
                other.close()
            raise ConfigError(f"port {address[1]} was taken while starting ({exc.strerror}); choose another "
                              "--port") from None
        out.append(sock)
    for sock in out:
        sock.listen(2048)  # connections wait in the backlog while a worker starts
    return out


def _worker(serve: Callable[[socket.socket], None], sock: socket.socket, others: list[socket.socket],
            before: Callable[[], None]) -> None:
    """The body of a forked worker: never returns (``os._exit``, so the parent's exit handlers do not run)."""
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # uvicorn installs its own while it serves
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        for other in others:
            other.close()
        before()
        serve(sock)
        code = 0
    except BaseException:  # noqa: BLE001 - a worker reports and exits; the parent decides what follows
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run_workers(settings: WorkerSettings, sockets: list[socket.socket], serve: Callable[[socket.socket], None],
                before: Callable[[], None]) -> int:
    """Fork one worker per socket (``before()`` then ``serve(sock)`` in each) and supervise them until SIGTERM or
    SIGINT; returns the exit code (0: stopped on request, 1: workers kept failing)."""
    stopping: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    workers: dict[int, int] = {}  # pid -> socket number
    restarts: list[float] = []

    def fork(slot: int) -> None:
        pid = os.fork()
        if pid == 0:
            _worker(serve, sockets[slot], [s for i, s in enumerate(sockets) if i != slot], before)
        workers[pid] = slot

    try:
        for number in range(len(sockets)):
            fork(number)
        log.info("c2kd serve: %d workers (pids %s) on http://%s:%d, %d torch thread(s) each", len(workers),
                 " ".join(map(str, workers)), settings.host, settings.port, settings.torch_threads)
        code = 0
        deadline: float | None = None
        while workers:
            if stopping and deadline is None:
                deadline = time.monotonic() + settings.graceful_timeout + KILL_MARGIN
                for sock in sockets:  # the workers' copies are the last: closed with them, new connections refused
                    sock.close()
                for pid in workers:
                    _signal(pid, signal.SIGTERM)
            if deadline is not None and time.monotonic() > deadline:
                for pid in workers:
                    log.warning("worker %d did not stop within %.0f s: killed", pid, settings.graceful_timeout)
                    _signal(pid, signal.SIGKILL)
                deadline = float("inf")
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                time.sleep(0.05)
                continue
            if pid not in workers:
                continue
            number = workers.pop(pid)
            if stopping:
                continue
            log.error("worker %d exited (%s)", pid, _how(status))
            now = time.monotonic()
            restarts[:] = [t for t in restarts if now - t < RESTART_WINDOW] + [now]
            if len(restarts) > MAX_RESTARTS:
                log.error("workers failed %d times within %.0f s: stopping the server", len(restarts), RESTART_WINDOW)
                stopping.append(signal.SIGTERM)
                code = 1
                continue
            fork(number)
        return code
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for sock in sockets:
            sock.close()


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
