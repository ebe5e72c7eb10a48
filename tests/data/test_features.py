"""Feature store: round trip, atomic shards, resume after a crash, and clear errors."""

import numpy as np
import pytest

from c2kd.data.features import FeatureStore, FeatureStoreWriter
from c2kd.errors import DataError


def test_round_trip_with_times(tmp_path):
    rng = np.random.default_rng(0)
    videos = {f"v{i}": rng.standard_normal((3 + i, 8)).astype(np.float32) for i in range(7)}
    with FeatureStoreWriter(tmp_path / "s", dim=8, encoder="test", fps=1.0, flush_every=3) as w:
        for vid, feats in videos.items():
            w.add(vid, feats, times=np.arange(len(feats)) * 0.5)
    store = FeatureStore(tmp_path / "s")
    assert sorted(store.ids) == sorted(videos)
    for vid, feats in videos.items():
        np.testing.assert_allclose(store[vid], feats.astype(np.float16))
        np.testing.assert_allclose(store.times(vid), np.arange(len(feats)) * 0.5)
    assert len(list((tmp_path / "s" / "shards").glob("*.index.parquet"))) == 3  # 3 + 3 + 1


def test_uncommitted_shard_is_ignored_and_rerun_completes(tmp_path):
    with FeatureStoreWriter(tmp_path / "s", dim=4, flush_every=2) as w:
        w.add("a", np.ones((2, 4)))
        w.add("b", np.ones((2, 4)))
    # a writer killed between its data file and its index leaves an orphan data file: not a shard
    np.save(tmp_path / "s" / "shards" / "part-dead.npy", np.zeros((5, 4), np.float16))
    store = FeatureStore(tmp_path / "s")
    assert sorted(store.ids) == ["a", "b"]
    w = FeatureStoreWriter(tmp_path / "s", dim=4)
    assert "a" in w and "c" not in w
    w.add("c", np.ones((1, 4)))
    w.close()
    assert sorted(FeatureStore(tmp_path / "s").ids) == ["a", "b", "c"]


def test_errors_name_the_problem(tmp_path):
    w = FeatureStoreWriter(tmp_path / "s", dim=4)
    with pytest.raises(DataError, match="NaN"):
        w.add("nan", np.array([[0, 1, np.nan, 0]], np.float32))
    with pytest.raises(DataError, match="expected"):
        w.add("wrongdim", np.zeros((2, 5)))
    with pytest.raises(DataError, match="no frames"):
        w.add("empty", np.zeros((0, 4)))
    w.add("ok", np.zeros((1, 4)))
    with pytest.raises(DataError, match="already"):
        w.add("ok", np.zeros((1, 4)))
    w.close()
    with pytest.raises(DataError, match="4-d"):
        FeatureStoreWriter(tmp_path / "s", dim=8)
    with pytest.raises(DataError, match="not a feature store"):
        FeatureStore(tmp_path / "nowhere")
