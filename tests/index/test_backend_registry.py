"""Index backends register themselves (``@BACKENDS.register``): a new one is one class, found by name everywhere."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from searchkit import brute_force

from c2kd.errors import ConfigError
from c2kd.index import BACKENDS, VideoIndex, make_backend
from c2kd.index.base import Candidates, backend_class
from c2kd.index.exact import ExactBackend, top_rows
from c2kd.index.options import declared_options


@pytest.fixture
def scratch_backends():
    with BACKENDS.scoped():  # backends registered in a test are forgotten after it
        yield


def test_a_backend_registered_with_the_decorator_builds_and_searches_an_index(tmp_path, scratch_backends):
    searched = []

    @BACKENDS.register("candidates")
    class CandidateBackend(ExactBackend):
        """Exact top-n entries as if approximate: the index asks ``candidates`` for them and re-scores them."""

        name = "candidates"

        def candidates(self, query, n, among=None):
            searched.append(n)
            every = super().candidates(query, n, among)
            scores, rows = top_rows(every.scores, n)
            return Candidates(every.keys[rows], scores + 0.5, exact=False)  # scores off: the index re-scores

    assert "candidates" in BACKENDS and backend_class("candidates") is CandidateBackend
    assert isinstance(make_backend("candidates", 8), CandidateBackend)
    assert declared_options()["candidates"] == ExactBackend.OPTIONS

    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = [f"v{i:02d}" for i in range(60)]
    index = VideoIndex.build(tmp_path / "idx", ids, x, backend="candidates", options={"chunk": 16})
    index.close()
    reopened = VideoIndex.open(tmp_path / "idx")  # the manifest names the backend: found by its name again
    try:
        assert isinstance(reopened.backend, CandidateBackend) and reopened.backend.chunk == 16
        query = x[7]
        hits = reopened.search(query, k=5)[0]
        assert searched, "the registered backend answered the search"
        assert [h.video_id for h in hits] == [vid for vid, _ in brute_force(x, ids, query, 5)]
    finally:
        reopened.close()


def test_an_unknown_backend_names_the_four_built_in_ones():
    with pytest.raises(ConfigError) as error:
        make_backend("elastic", 8)
    message = str(error.value)
    assert message.startswith("unknown index backend 'elastic'; choose one of ")
    listed = message.removeprefix("unknown index backend 'elastic'; choose one of ").split(" (")[0]
    assert sorted(listed.split(", ")) == ["exact", "faiss", "milvus", "qdrant"]  # in the order they were imported
    assert message.endswith("(`c2kd index build --help` describes them)")


def test_listing_the_backends_imports_no_optional_library():
    code = ("import sys, c2kd.index.store; from c2kd.index.base import BACKENDS; "
            "assert BACKENDS.names() == ['exact', 'faiss', 'qdrant', 'milvus'], BACKENDS.names(); "
            "print([m for m in ('faiss', 'qdrant_client', 'pymilvus') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
