"""QueryEmbedder: queries of many threads embedded together, and a failure handed to every caller it concerns."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest

from c2kd.checkpoint import load_checkpoint
from c2kd.search.model import QueryEmbedder


@pytest.fixture(scope="module")
def model(random_checkpoint):
    loaded, _ = load_checkpoint(random_checkpoint)
    return loaded.eval()


def test_a_failed_batch_reaches_every_waiting_caller_and_the_next_batch_works(model):
    embedder = QueryEmbedder(model)
    try:
        jobs = [(["a dog runs"], Future()), ([None], Future()), (["a cat", "two men cook"], Future())]
        for job in jobs:  # queued before the worker starts: it takes them as one micro-batch
            embedder._queue.put(job)
        embedder._ensure_worker()
        errors = [fut.exception(timeout=60) for _, fut in jobs]  # none left waiting
        assert all(e is not None for e in errors) and len({id(e) for e in errors}) == 1
        # the worker lives on: the next queries are embedded as the model embeds them alone
        texts = ["a dog runs", "a cat", "two men cook"]
        with ThreadPoolExecutor(max_workers=3) as pool:
            got = list(pool.map(lambda t: embedder.embed([t])[0], texts))
        want = model.embed_texts(texts).numpy()
        np.testing.assert_allclose(np.stack(got), want, atol=1e-5)
    finally:
        embedder.close()


def test_a_failure_alone_does_not_reach_the_queries_of_another_batch(model):
    embedder = QueryEmbedder(model)
    try:
        with pytest.raises(Exception):  # noqa: B017 - whatever the tokenizer raises for a non-string
            embedder.embed([None])  # type: ignore[list-item]
        assert embedder.embed(["a dog runs"]).shape == (1, model.embed_dim)
    finally:
        embedder.close()


def test_an_embedder_of_one_caller_embeds_in_its_thread_as_the_model_does(model):
    """``shared=False`` (a command's own queries): the caller's thread embeds them, no worker thread is started."""
    embedder = QueryEmbedder(model, shared=False)
    try:
        texts = ["a dog runs", "ein Hund läuft"]
        np.testing.assert_allclose(embedder.embed(texts), model.embed_texts(texts).numpy(), atol=1e-5)
        assert embedder._thread is None
    finally:
        embedder.close()
