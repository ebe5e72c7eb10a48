"""The faiss backend's saved structure is derived from the index's vectors: damaged, it is rebuilt from them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from c2kd.index import VideoIndex
from c2kd.index.store import MANIFEST

pytest.importorskip("faiss")


def _corpus(n: int = 200, dim: int = 16, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return [f"v{i:04d}" for i in range(n)], x, x[:5] + 0.05 * rng.standard_normal((5, dim)).astype(np.float32)


IVF = {"kind": "ivf", "nlist": 4, "nprobe": 4}
HNSW = {"kind": "hnsw", "M": 16}  # removals are masked: deleted.npy


@pytest.mark.parametrize("options,file,damage", [(IVF, "faiss.index", "cut short"), (IVF, "faiss.index", "garbage"),
                                                 (HNSW, "faiss.index", "cut short"),
                                                 (HNSW, "deleted.npy", "cut short"), (HNSW, "deleted.npy", "garbage")])
def test_a_damaged_faiss_state_is_rebuilt_and_answers_as_before(tmp_path, options, file, damage):
    ids, x, queries = _corpus()
    index = VideoIndex.build(tmp_path / "idx", ids, x, backend="faiss", options=options)
    index.remove(ids[:3])
    before = [[h.video_id for h in hits] for hits in index.search(queries, k=10)]
    index.close()
    manifest = json.loads((tmp_path / "idx" / MANIFEST).read_text())
    target = tmp_path / "idx" / manifest["backend"]["state"] / file
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2] if damage == "cut short" else b"\x00garbage" * 64)
    reopened = VideoIndex.open(tmp_path / "idx")
    after = [[h.video_id for h in hits] for hits in reopened.search(queries, k=10)]
    assert after == before and len(reopened) == len(ids) - 3
    assert not {"v0000", "v0001", "v0002"} & {v for hits in after for v in hits}
    reopened.close()
