"""``c2kd data subtitles STORE FILES...``: subtitle files attached to a store made without video files, by the
video ids in their names; a bad file is one error and leaves the store as it was; attaching again replaces."""

from __future__ import annotations

import numpy as np
import pytest
from timedkit import srt_text, vtt_text

from c2kd.data.features import FeatureStoreWriter
from c2kd.data.timed_text import FOLDER, TimedText
from c2kd.errors import DataError
from c2kd.features.timed_text.attach import attach_subtitles, video_of
from c2kd_testkit import assert_one_line_error, run_c2kd


@pytest.fixture
def store(tmp_path):
    """Features of three videos (no video files): v1 and v1.b of 6 rows, v2 of 4 rows, at 1 row per second."""
    out = tmp_path / "store"
    with FeatureStoreWriter(out, dim=3, encoder="imported", fps=1.0) as writer:
        for vid, rows in (("v1", 6), ("v1.b", 6), ("v2", 4)):
            writer.add(vid, np.ones((rows, 3), np.float32))
    return out


def test_files_named_by_video_id_and_language_attach_to_their_videos(store, tmp_path):
    (tmp_path / "v1.srt").write_text(srt_text([(1.0, 2.0, "plain")]), encoding="utf-8")
    (tmp_path / "v1.de.vtt").write_text(vtt_text([(0.5, 1.5, "deutsch")]), encoding="utf-8")
    (tmp_path / "v1.b.fr.srt").write_text(srt_text([(3.0, 4.0, "français")]), encoding="utf-8")
    (tmp_path / "v2.cs.srt").write_text(srt_text([(1.0, 9.0, "česky, dlouho")]), encoding="utf-8")
    warnings: list[str] = []
    report = attach_subtitles(store, sorted(tmp_path.glob("*.*t")), warn=warnings.append)
    assert (report.files, report.videos, report.segments) == (4, 3, 4)
    words = TimedText(store)
    assert [(s.start, s.end, s.text, s.language, s.source) for s in words["v1"]] == [
        (0.5, 1.5, "deutsch", "de", "file:v1.de.vtt"), (1.0, 2.0, "plain", "", "file:v1.srt")]
    assert [(s.text, s.language) for s in words["v1.b"]] == [("français", "fr")]
    assert [(s.end, s.language) for s in words["v2"]] == [(4.0, "cs")]  # cut at the 4-s video's end
    assert len(warnings) == 1 and str(tmp_path / "v2.cs.srt") in warnings[0] and "past the end" in warnings[0]


def test_attaching_again_replaces_that_file_and_keeps_the_others(store, tmp_path):
    first, other = tmp_path / "v1.en.srt", tmp_path / "v1.de.srt"
    first.write_text(srt_text([(1.0, 2.0, "old")]), encoding="utf-8")
    other.write_text(srt_text([(3.0, 4.0, "andere")]), encoding="utf-8")
    attach_subtitles(store, [first, other])
    first.write_text(srt_text([(1.5, 2.5, "new"), (4.0, 5.0, "more")]), encoding="utf-8")
    attach_subtitles(store, [first])
    assert [s.text for s in TimedText(store)["v1"]] == ["new", "andere", "more"]
    assert TimedText(store).sources("v1") == ["file:v1.de.srt", "file:v1.en.srt"]


def test_a_bad_file_is_one_error_and_nothing_is_written(store, tmp_path):
    good = tmp_path / "v1.srt"
    good.write_text(srt_text([(1.0, 2.0, "fine")]), encoding="utf-8")
    attach_subtitles(store, [good])
    shards = sorted((store / FOLDER).iterdir())
    unknown = tmp_path / "v9.de.srt"
    unknown.write_text(srt_text([(1.0, 2.0, "whose?")]), encoding="utf-8")
    with pytest.raises(DataError, match=r"v9\.de\.srt: no video 'v9' in the store \(its videos: v1, v1\.b, v2\)"):
        attach_subtitles(store, [good, unknown])
    broken = tmp_path / "v2.srt"
    broken.write_text("not subtitles at all\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"v2\.srt: no subtitle cue could be read"):
        attach_subtitles(store, [good, broken])
    assert sorted((store / FOLDER).iterdir()) == shards
    assert [s.text for s in TimedText(store)["v1"]] == ["fine"]


def test_the_video_of_a_file_name_is_the_longest_id_it_starts_with():
    from pathlib import Path

    ids = {"v1", "v1.b", "talk"}
    assert video_of(Path("v1.b.de.srt"), ids) == "v1.b"
    assert video_of(Path("v1.de.srt"), ids) == "v1"
    assert video_of(Path("talk.srt"), ids) == "talk"
    with pytest.raises(DataError, match="no video 'walk'"):
        video_of(Path("walk.srt"), ids)


def test_cli_attaches_and_reports_a_bad_file_in_one_line(store, tmp_path):
    good = tmp_path / "v2.de.srt"
    good.write_text(srt_text([(1.0, 2.0, "gut")]), encoding="utf-8")
    proc = run_c2kd("data", "subtitles", str(store), str(good))
    assert proc.returncode == 0, proc.stderr
    assert "attached 1 file(s) to 1 video(s)" in proc.stdout
    empty = tmp_path / "v1.srt"
    empty.write_bytes(b"")
    noise = tmp_path / "v2.fr.srt"
    noise.write_bytes(bytes((i * 197 + 89) % 256 for i in range(600)))
    proc = run_c2kd("data", "subtitles", str(store), str(empty), str(noise))
    assert_one_line_error(proc, str(noise), "unknown text encoding", "UTF-8")
    assert [s.text for s in TimedText(store)["v2"]] == ["gut"] and "v1" not in TimedText(store)
