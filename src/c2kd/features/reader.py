"""The reader stage: decode videos (in this process or in worker processes) into a stream of messages.

Messages, in order per video (videos may interleave when there are several workers)::

    Frames(job, images, times)   a chunk of sampled, already resized frames
    Finished(job, n_frames, duration)   all frames of the video were sent; its length in seconds
    Failed(job, reason)          the video cannot be used (frames sent before are to be dropped)

Workers get jobs from a queue and send messages through a bounded queue, so memory stays bounded when the
encoder is the slow stage. A worker that dies (e.g. a decoder crash on a hostile file) fails its current video
and is replaced; the run goes on. Workers end with the process that started them, even when it is killed with
``kill -9`` (they watch it), and are stopped without a traceback.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import select
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from c2kd.features.decode import SampledVideo, VideoDecodeError, iter_sampled_frames
from c2kd.features.jobs import VideoJob
from c2kd.features.preprocess import ImagePreprocess


@dataclass
class Frames:
    """Shape: images: n x [S, S, 3] uint8 (resized for the encoder); times: n seconds."""

    job: int
    images: list[np.ndarray]
    times: list[float]


@dataclass
class Finished:
    """``duration``: the video's length in seconds, as its file states it (see :func:`c2kd.features.decode.video_length`)."""

    job: int
    n_frames: int
    duration: float | None = None


@dataclass
class Failed:
    job: int
    reason: str


Message = Frames | Finished | Failed


def decode_job(index: int, job: VideoJob, fps: float, resize: ImagePreprocess | None, threads: int,
               chunk: int) -> Iterator[Message]:
    """Messages for one video. Never raises for a bad file: it yields :class:`Failed` instead."""
    images: list[np.ndarray] = []
    times: list[float] = []
    total = 0
    transform = resize.resize if resize is not None else None
    video = SampledVideo(iter_sampled_frames(job.path, fps, transform=transform, threads=threads))
    try:
        for item in video:
            images.append(item.image)
            times.append(item.time)
            total += 1
            if len(images) >= chunk:
                yield Frames(index, images, times)
                images, times = [], []
    except VideoDecodeError as exc:
        yield Failed(index, exc.reason)
        return
    except Exception as exc:  # noqa: BLE001 - anything else a hostile file can trigger must not stop the run
        yield Failed(index, f"unexpected decoder error ({type(exc).__name__}: {exc})")
        return
    if images:
        yield Frames(index, images, times)
    yield Finished(index, total, video.length)


def read_inline(jobs: Sequence[VideoJob], fps: float, resize: ImagePreprocess | None, threads: int = 0,
                chunk: int = 64) -> Iterator[Message | None]:
    """Decode in this process, one video after another."""
    for index, job in enumerate(jobs):
        yield from decode_job(index, job, fps, resize, threads, chunk)


@dataclass
class _Start:
    worker: int
    job: int


#: how often a worker checks that the process it serves is still alive, where it cannot wait on it
OWNER_CHECK_SECONDS = 0.2


def exit_with(owner: int, every: float = OWNER_CHECK_SECONDS) -> None:
    """End this process as soon as process ``owner`` (the run it decodes for) is gone, even after ``kill -9``.

    A daemon thread waits on a pidfd of the owner (Linux), else polls it, so the process ends even while it is
    blocked on a full queue or decoding. The owner is not always the parent: a fork server's children are
    the server's, and the server itself only ends once they have.
    """
    try:
        pidfd = os.pidfd_open(owner) if hasattr(os, "pidfd_open") else None
    except ProcessLookupError:
        os._exit(1)
    except OSError:  # e.g. a kernel without pidfds
        pidfd = None

    def watch() -> None:
        if pidfd is not None:
            select.select([pidfd], [], [])
        else:
            while _alive(owner):
                time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, name="c2kd-watch-owner", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, and someone else's: the pid was reused
        return False
    return True


def _worker_main(worker: int, owner: int, tasks, results, fps: float, resize: ImagePreprocess | None,
                 threads: int, chunk: int) -> None:
    # The parent stops workers with SIGTERM, and handles Ctrl-C (sent to the whole process group) itself: a
    # handler inherited from it (e.g. `c2kd extract` turns SIGTERM into KeyboardInterrupt) would print a
    # traceback per worker.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with(owner)
    while True:
        task = tasks.get()
        if task is None:
            return
        index, job = task
        results.put(_Start(worker, index))
        for message in decode_job(index, job, fps, resize, threads, chunk):
            results.put(message)


def default_start_method() -> str:
    """``forkserver`` where it exists, else ``spawn``; ``$C2KD_MP_START`` overrides it.

    Not ``fork``: a process that has run threads (PyTorch's and OpenCV's pools, a web server, a tokenizer) can
    be forked while one of them holds a lock, and the child then waits on that lock forever. The fork server is
    a fresh single-threaded process, so the workers it forks start clean, in well under a second each.
    """
    env = os.environ.get("C2KD_MP_START")
    if env:
        return env
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


def read_parallel(jobs: Sequence[VideoJob], fps: float, resize: ImagePreprocess | None, workers: int,
                  threads: int = 1, chunk: int = 64, queue_size: int | None = None,
                  poll_seconds: float = 0.05, start_method: str | None = None) -> Iterator[Message | None]:
    """Decode with ``workers`` processes. Yields None when nothing arrived for ``poll_seconds`` (the consumer
    may then encode a partial batch). Stops its workers when closed (also on error or interrupt)."""
    if not jobs:
        return
    method = start_method or default_start_method()
    ctx = mp.get_context(method)
    tasks = ctx.Queue()
    results = ctx.Queue(maxsize=queue_size or 4 * workers)
    for task in enumerate(jobs):
        tasks.put(task)
    for _ in range(workers):
        tasks.put(None)
    args = (tasks, results, fps, resize, threads, chunk)

    def start(worker: int):
        proc = ctx.Process(target=_worker_main, args=(worker, os.getpid(), *args), daemon=True,  # type: ignore[attr-defined]
                           name=f"c2kd-decode-{worker}")  # ignore: typeshed's BaseContext lacks Process
        proc.start()
        return proc

    procs = {w: start(w) for w in range(workers)}
    current: dict[int, int | None] = dict.fromkeys(procs)
    ended: set[int] = set()
    next_worker = workers
    try:
        while len(ended) < len(jobs):
            try:
                message = results.get(timeout=poll_seconds)
            except queue.Empty:
                yield None
                for w, proc in list(procs.items()):
                    if proc.is_alive() or not results.empty():
                        continue
                    # The worker is gone and everything it sent has been read.
                    job = current.pop(w, None)
                    del procs[w]
                    if job is not None and job not in ended:
                        ended.add(job)
                        yield Failed(job, f"decoder process died (exit code {proc.exitcode}) on this file")
                    if job is None and proc.exitcode != 0:
                        raise RuntimeError(f"decode worker {proc.name} exited with code {proc.exitcode} before "
                                           "taking a video; see the traceback above") from None
                    if job is not None and len(ended) < len(jobs):
                        procs[next_worker] = start(next_worker)
                        current[next_worker] = None
                        next_worker += 1
                if not procs and len(ended) < len(jobs):
                    raise RuntimeError("all decode workers exited before the work was done") from None
                continue
            if isinstance(message, _Start):
                current[message.worker] = message.job
                continue
            if isinstance(message, (Finished, Failed)):
                ended.add(message.job)
                for w, job in current.items():
                    if job == message.job:
                        current[w] = None
            yield message
    finally:
        for proc in procs.values():
            if proc.is_alive():
                proc.terminate()
        for proc in procs.values():
            proc.join(timeout=5)
        tasks.cancel_join_thread()
        results.cancel_join_thread()
