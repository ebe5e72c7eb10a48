"""The Multi30K proxy builder, on the real shared files (a small subset)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from c2kd.data.dataset import VideoTextDataset
from c2kd.data.multi30k import (
    FRAMES,
    build_multi30k_proxy,
    locate_multi30k,
    proxy_frames,
    read_split,
    required_files,
)
from c2kd.errors import DataError


def test_proxy_frames_drop_one_copy_of_the_caption():
    descs = ["b", "A cat.", "c", "A cat.", "d"]
    assert proxy_frames("A cat.", descs) == (["b", "c", "A cat.", "d"], "exact")
    frames, how = proxy_frames("A cat sits.", ["a dog", "A cat sits .", "x", "y", "z"])
    assert (frames, how) == (["a dog", "x", "y", "z"], "closest")


@pytest.mark.parametrize("split,expected", [("test", 1000), ("val", 1014)])
def test_every_real_item_has_four_frames_without_its_caption(multi30k_root, split, expected):
    items = read_split(multi30k_root, split)
    assert len(items) == expected
    for it in items:
        assert len(it.frames) == FRAMES and it.removed_by == "exact"
        assert sorted([*it.frames, it.captions["en"]]) == sorted(it.descriptions)
        assert all(it.captions[lang] for lang in ("en", "de", "fr", "cs"))
    with gzip.open(multi30k_root / "task1/raw/test_2016_flickr.cs.gz", "rt", encoding="utf-8") as cs:
        first_cs = cs.readline()
    if split == "test":
        assert items[0].captions["cs"] == first_cs.strip() and items[0].item_id == "1007129816"


def test_build_a_subset_and_read_it_back(multi30k_root, muse, tmp_path):
    out = build_multi30k_proxy(tmp_path / "proxy", multi30k_root, max_train=12, max_val=6, max_test=6, progress=False,
                               backbone=muse, log=lambda _: None)
    data = VideoTextDataset(out)
    assert data.splits == ["test", "train", "val"] and data.meta["proxy"] is True
    assert set(data.languages) == {"en", "de", "fr", "cs"} and data.meta["frame_encoder"] == "packaged-muse"
    train = data.split("train", training=True)
    assert len(train) == 12 and data.features.dim == 512
    test = data.split("test")
    items = read_split(multi30k_root, "test", limit=6)
    assert test.video_ids == [it.item_id for it in items]
    assert test.captions["de"][2] == [items[2].captions["de"]]
    frames = test.frames(2).astype(np.float32)
    expected = muse.encode(items[2].frames)  # independent: the engine straight on the four descriptions
    assert frames.shape == (FRAMES, 512)
    np.testing.assert_allclose(frames, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=2e-3)
    np.testing.assert_allclose(data.features.times(items[2].item_id), [0, 1, 2, 3])
    # the proxy is meaningful: an item's English caption is nearest to its own frames (mean over frames)
    videos = np.stack([test.frames(i).astype(np.float32).mean(0) for i in range(len(test))])
    queries = muse.encode([c[0] for c in test.captions["en"]])
    assert (np.argmax(queries @ videos.T, axis=1) == np.arange(len(test))).mean() >= 0.5
    # rebuilding resumes: nothing is encoded twice, and a larger cut only adds the new items
    build_multi30k_proxy(out, multi30k_root, max_train=14, max_val=6, max_test=6, progress=False, backbone=muse,
                         log=lambda _: None)
    assert len(VideoTextDataset(out).split("train", training=True)) == 14


def test_locate_prefers_c2kd_data_then_explains_what_to_do(multi30k_root, tmp_path):
    found = locate_multi30k(env={"C2KD_DATA": str(multi30k_root.parent)}, cwd=tmp_path, download=False)
    assert found.root == multi30k_root and found.source == "$C2KD_DATA" and "C2KD_DATA" in found.message
    given = locate_multi30k(multi30k_root, download=False)
    assert given.source == "given"
    partial = tmp_path / "partial" / "multi30k"
    (partial / "task1").mkdir(parents=True)
    with pytest.raises(DataError, match="does not hold the Multi30K files"):
        locate_multi30k(partial, download=False)


def test_nothing_found_offline_says_how_to_fix_it(tmp_path, monkeypatch):
    import c2kd.data.multi30k as m

    monkeypatch.setattr(m, "_project_root", lambda: tmp_path / "repo")
    monkeypatch.setattr(m, "default_download_dir", lambda: tmp_path / "cache" / "multi30k")
    with pytest.raises(DataError, match="set C2KD_DATA") as info:
        locate_multi30k(env={}, cwd=tmp_path / "here", download=False)
    assert "--no-download" in str(info.value) and len(required_files()) == 33


def test_the_command_reads_and_fills_a_frame_encoder_cache(multi30k_root, muse, tmp_path):
    """`c2kd multi30k-proxy --cache`: the same frames as a build without it, and every description kept in the
    cache (what a later build, or `c2kd train` with that cache, reads back); --processes needs the cache."""
    from c2kd.encoders.text.cache import CachedTextBackbone, text_key
    from c2kd_testkit import assert_one_line_error, run_c2kd

    cut = ["--max-train", "3", "--max-val", "2", "--max-test", "2", "--data", multi30k_root, "--no-download"]
    proc = run_c2kd("multi30k-proxy", "--out", tmp_path / "a", "--cache", tmp_path / "cache", *cut)
    assert proc.returncode == 0, proc.stderr
    plain = build_multi30k_proxy(tmp_path / "plain", multi30k_root, max_train=3, max_val=2, max_test=2,
                                 progress=False, backbone=muse, log=lambda _: None)
    cached, reference = VideoTextDataset(tmp_path / "a"), VideoTextDataset(plain)
    for vid in reference.features.ids:
        np.testing.assert_allclose(cached.features[vid], reference.features[vid], atol=2e-3)
    items = [it for split in ("train", "val", "test") for it in read_split(multi30k_root, split, 3 if split == "train"
                                                                            else 2)]
    cache = CachedTextBackbone(muse, tmp_path / "cache").cache
    rows, found = cache.lookup([text_key(t) for it in items for t in it.frames])
    assert found.all() and len(rows) == 4 * len(items)
    assert_one_line_error(run_c2kd("multi30k-proxy", "--out", tmp_path / "b", "--processes", "2", *cut),
                          "--cache")
