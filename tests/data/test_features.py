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


def test_each_video_keeps_its_length_in_seconds(tmp_path):
    rng = np.random.default_rng(1)
    with FeatureStoreWriter(tmp_path / "s", dim=4, fps=1.0, flush_every=2) as w:
        w.add("odd", rng.standard_normal((51, 4)), times=np.arange(51), duration=50.07)
        w.add("unknown", rng.standard_normal((3, 4)), times=np.arange(3))
        w.add("short", rng.standard_normal((8, 4)), times=np.arange(8), duration=7.3)
        for bad in (0.0, -1.0, float("nan"), float("inf")):
            with pytest.raises(DataError, match="length"):
                w.add("bad", rng.standard_normal((2, 4)), duration=bad)
    store = FeatureStore(tmp_path / "s")
    assert store.duration("odd") == 50.07 and store.duration("short") == 7.3 and store.duration("unknown") is None
    with pytest.raises(KeyError):
        store.duration("nope")


def test_a_store_written_before_lengths_were_recorded_still_opens(tmp_path):
    """Shard indexes without the duration column (the format before it): the videos open, their length is
    unknown, and a timeline estimates it from the rows as before (the last row's start plus one step)."""
    import pyarrow.parquet as pq

    from c2kd.search.windows import Timeline

    with FeatureStoreWriter(tmp_path / "s", dim=4, fps=2.0) as w:
        w.add("a", np.ones((5, 4)), times=np.arange(5) / 2, duration=2.3)
        w.add("b", np.ones((3, 4)))
    (index,) = (tmp_path / "s" / "shards").glob("*.index.parquet")
    table = pq.read_table(index)
    assert "duration" in table.column_names
    pq.write_table(table.drop(["duration"]), index)
    store = FeatureStore(tmp_path / "s")
    assert sorted(store.ids) == ["a", "b"] and store.duration("a") is None and store.duration("b") is None
    np.testing.assert_array_equal(store["a"], np.ones((5, 4), np.float16))
    assert Timeline.of_video(store, "a").duration == pytest.approx(2.5)  # 2.0 + the 0.5 s step
    assert Timeline.of_video(store, "b").duration == pytest.approx(1.5)  # rows at 0, 0.5, 1.0 (the store's fps)
    with FeatureStoreWriter(tmp_path / "s", dim=4, fps=2.0) as w:  # and more videos can be added to it
        w.add("c", np.ones((2, 4)), times=[0.0, 0.5], duration=0.9)
    assert FeatureStore(tmp_path / "s").duration("c") == 0.9
