"""Finding videos, video ids and their collisions, deterministic shards."""

from __future__ import annotations

import hashlib

import pytest

from c2kd.errors import ConfigError
from c2kd.features.jobs import discover_videos, make_jobs, parse_shard, select_shard, shard_of


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_discover_walks_folders_keeps_named_files_and_lists(tmp_path):
    _touch(tmp_path / "v" / "b.mp4")
    _touch(tmp_path / "v" / "a.MKV")
    _touch(tmp_path / "v" / "notes.txt")
    _touch(tmp_path / "v" / ".hidden.mp4")
    _touch(tmp_path / "v" / "sub" / "c.webm")
    named = _touch(tmp_path / "odd.bin")
    listed = _touch(tmp_path / "other" / "d.mp4")
    (tmp_path / "list.txt").write_text("# comment\nother/d.mp4\n\n")
    items = discover_videos([tmp_path / "v", named, tmp_path / "v" / "b.mp4"], [tmp_path / "list.txt"])
    names = [p.name for p, _ in items]
    assert names == ["a.MKV", "b.mp4", "c.webm", "odd.bin", "d.mp4"]   # sorted per folder, no duplicates
    assert items[0][1] == tmp_path / "v" and items[3][1] is None
    assert items[4][0].resolve() == listed.resolve()


def test_ids_from_stem_name_relpath_and_collisions(tmp_path):
    a = _touch(tmp_path / "v" / "x" / "clip.mp4")
    b = _touch(tmp_path / "v" / "y" / "clip.mp4")
    items = discover_videos([tmp_path / "v"])
    with pytest.raises(ConfigError) as err:
        make_jobs(items, "stem")
    assert str(a) in str(err.value) and str(b) in str(err.value) and "--id-from relpath" in str(err.value)
    assert [j.video_id for j in make_jobs(items, "relpath")] == ["x/clip", "y/clip"]
    assert [j.video_id for j in make_jobs(items[:1], "name")] == ["clip.mp4"]
    assert [j.video_id for j in make_jobs(items, lambda p: p.parent.name + "-" + p.stem)] == ["x-clip", "y-clip"]


def test_a_folder_link_loop_is_walked_once_and_each_video_has_one_id(tmp_path):
    _touch(tmp_path / "v" / "clip.mp4")
    _touch(tmp_path / "v" / "sub" / "other.mp4")
    (tmp_path / "v" / "loop").symlink_to(".")  # v/loop/loop/... would go on ~40 deep
    (tmp_path / "v" / "sub" / "up").symlink_to("..")
    (tmp_path / "v" / "again").symlink_to("sub")  # a second way into sub/
    (tmp_path / "v" / "broken").symlink_to("nowhere")
    _touch(tmp_path / "elsewhere" / "linked.mp4")
    (tmp_path / "v" / "outside").symlink_to(tmp_path / "elsewhere")  # a link to a folder not walked yet: followed
    items = discover_videos([tmp_path / "v"])
    ids = [j.video_id for j in make_jobs(items, "relpath")]
    assert ids == ["clip", "again/other", "outside/linked"]
    assert [j.video_id for j in make_jobs(items, "stem")] == ["clip", "other", "linked"]


def test_shard_of_is_a_stable_hash_and_shards_partition_the_corpus():
    # independent computation of the documented rule: first 8 bytes of SHA-1, big endian, modulo n
    expected = int(hashlib.sha1(b"video9770").hexdigest()[:16], 16) % 7
    assert shard_of("video9770", 7) == expected
    from c2kd.features.jobs import VideoJob

    jobs = [VideoJob(f"/v/{i}.mp4", f"vid{i}") for i in range(200)]
    parts = [select_shard(jobs, i, 4) for i in range(4)]
    assert sorted(j.video_id for p in parts for j in p) == sorted(j.video_id for j in jobs)
    assert all(len(p) > 25 for p in parts)   # roughly balanced
    # the shard depends on the id only, not on the order or the rest of the corpus
    assert select_shard(list(reversed(jobs[:50])), 1, 4) == list(reversed([j for j in parts[1] if j in jobs[:50]]))


def test_parse_shard():
    assert parse_shard(None) == (0, 1)
    assert parse_shard("2/5") == (2, 5)
    assert parse_shard("env", {"RANK": "1", "WORLD_SIZE": "2"}) == (1, 2)
    for bad, why in [("5/5", "need 0 <= i < n"), ("a/b", "expected i/n"), ("3", "expected i/n"),
                     ("-1/2", "need 0 <= i < n")]:
        with pytest.raises(ConfigError, match=why):
            parse_shard(bad)
    with pytest.raises(ConfigError, match="RANK"):
        parse_shard("env", {})
