"""Loading the student once for search, and embedding queries from many threads through one worker.

The text tower's tokenizer is not safe to call from several threads at once, and a batch of queries costs
little more than one. :class:`QueryEmbedder` therefore runs the model in a single worker thread that takes
every query waiting in its queue and embeds them together (micro-batching): concurrent HTTP requests share
forward passes instead of queueing on a lock.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from c2kd.errors import CheckpointError, DataError
from c2kd.retrieval import RetrievalModel

MAX_MICRO_BATCH = 64


def load_search_model(checkpoint: str | os.PathLike, device: str = "cpu") -> RetrievalModel:
    """Load a checkpoint's dual encoder (or fused model) in eval mode (``device``: cpu, cuda, cuda:1, mps, auto).

    A frozen text backbone's embedding cache is only read: users' queries are never written to disk.
    """
    import torch

    from c2kd.formats import load_model

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(checkpoint, device=device, persist_cache=False)
    model.eval()
    return model


def check_fingerprint(index_info: dict, checkpoint: str | os.PathLike, index_path: Path) -> None:
    """Refuse a checkpoint other than the one that embedded the index's videos (their spaces differ)."""
    from c2kd.formats import checkpoint_fingerprint, verify_checkpoint

    expected = index_info.get("checkpoint_fingerprint")
    if expected and expected != checkpoint_fingerprint(checkpoint):
        try:  # another fingerprint: damaged weights, or another checkpoint
            verify_checkpoint(checkpoint)
        except CheckpointError as exc:
            raise CheckpointError(f"the checkpoint {index_path} was built with is damaged ({exc}); restore "
                                  f"{checkpoint} from a copy: the index needs those very weights") from exc
        raise CheckpointError(
            f"{index_path} was built with checkpoint {index_info.get('checkpoint')!r} (fingerprint {expected}), "
            f"but {checkpoint} holds other weights: query and video embeddings would not be comparable. "
            f"Pass the original --checkpoint, or rebuild the index with `c2kd index build --checkpoint {checkpoint}`."
        )


def recorded(given: str | os.PathLike | None, info: Mapping[str, Any], key: str,
             index_path: str | os.PathLike | None) -> str | os.PathLike:
    """``given``, else the path the index recorded under ``key``; neither is a usage error naming ``--key``."""
    value = given or info.get(key)
    if value is None:
        raise DataError(f"{index_path}: the index does not record its {key}; pass --{key}")
    return value


class QueryEmbedder:
    """Embed query strings with a model's text tower, from any number of threads.

    With ``shared=False`` (a command answering its own queries, one thread) the caller's thread embeds them
    itself: no worker thread, no queue.

    Shape:
        embed(texts: N strings) -> [N, E] float32, unit rows
    """

    def __init__(self, model, max_batch: int = MAX_MICRO_BATCH, shared: bool = True):
        self.model = model
        self.max_batch = max_batch
        self.shared = shared
        self._alone = threading.Lock()  # without a worker: one caller at a time still (the tokenizer is not safe)
        self._queue: queue.Queue[tuple[list[str], Future] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def _ensure_worker(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="c2kd-query-embedder", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            jobs = [item]
            size = len(item[0])
            while size < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # stop after this batch
                    break
                jobs.append(nxt)
                size += len(nxt[0])
            texts = [t for job in jobs for t in job[0]]
            try:
                vectors = self._embed_now(texts)
            except BaseException as exc:  # noqa: BLE001 - hand the failure to every waiting caller
                for _, fut in jobs:
                    fut.set_exception(exc)
                continue
            start = 0
            for texts_of_job, fut in jobs:
                fut.set_result(vectors[start:start + len(texts_of_job)])
                start += len(texts_of_job)

    def _embed_now(self, texts: list[str]) -> np.ndarray:
        return self.model.embed_texts(texts).numpy().astype(np.float32)

    def embed(self, texts: Sequence[str], timeout: float | None = 120.0) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.model.embed_dim), np.float32)
        if not self.shared:
            with self._alone:
                return self._embed_now(list(texts))
        self._ensure_worker()
        fut: Future = Future()
        self._queue.put((list(texts), fut))
        return fut.result(timeout=timeout)

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=10)
        self._thread = None
