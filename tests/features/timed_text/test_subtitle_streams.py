"""Subtitle streams inside a container: real clips with SRT and WebVTT subtitles muxed in by PyAV (stream
language tags ``ger`` and ``fre``) and with MP4 timed text (``mov_text``) read back as the cues, with their
languages, on the frames' clock (0 = the container's start, as a player shows it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from timedkit import mux_mov_text, mux_subtitles, srt_text, vtt_text

from c2kd.features.timed_text.streams import StreamSource, dialogue_text, stream_language

GERMAN = [(1.0, 3.5, "Ein Mann spricht"), (5.0, 7.25, "über den Strand")]
FRENCH = [(2.0, 4.0, "Un homme parle"), (8.0, 9.5, "de la plage")]


@pytest.fixture(scope="module")
def muxed(tmp_path_factory, clips) -> Path:
    folder = tmp_path_factory.mktemp("muxed")
    (folder / "de.srt").write_text(srt_text(GERMAN), encoding="utf-8")
    (folder / "fr.vtt").write_text(vtt_text(FRENCH), encoding="utf-8")
    return mux_subtitles(clips["video9771"], folder / "talk.mkv", [(folder / "de.srt", "ger"),
                                                                  (folder / "fr.vtt", "fre")])


def test_muxed_subtitle_streams_read_back_with_their_languages(muxed):
    import av

    with av.open(str(muxed)) as container:
        assert [s.codec_context.name for s in container.streams.subtitles] == ["srt", "webvtt"]
        origin = container.start_time / 1e6  # the clip's picture starts at 33 ms: the player's (and frames') 0
    assert origin == pytest.approx(0.033, abs=0.002)
    segments = StreamSource().read(muxed, 14.0, lambda m: None)
    got = [(s.start, s.end, s.text, s.language) for s in segments]
    expected = sorted([(round(a - origin, 3), round(b - origin, 3), t, "de") for a, b, t in GERMAN]
                      + [(round(a - origin, 3), round(b - origin, 3), t, "fr") for a, b, t in FRENCH])
    assert [(round(a, 3), round(b, 3), t, lang) for a, b, t, lang in got] == expected
    assert {s.source for s in segments} == {"stream:1", "stream:2"}
    assert [s.text for s in StreamSource(language="fr").read(muxed, None, lambda m: None)] == [c[2] for c in FRENCH]


def test_mp4_timed_text_reads_back(tmp_path, clips):
    import av

    video = mux_mov_text(clips["video9770"], tmp_path / "talk.mp4", GERMAN, "deu")
    with av.open(str(video)) as container:
        assert [s.codec_context.name for s in container.streams.subtitles] == ["mov_text"]
        origin = container.start_time / 1e6 if container.start_time is not None else 0.0
    segments = StreamSource().read(video, 11.0, lambda m: None)
    assert [(round(s.start, 3), round(s.end, 3), s.text, s.language) for s in segments] == [
        (round(a - origin, 3), round(b - origin, 3), t, "de") for a, b, t in GERMAN]


def test_a_video_without_subtitle_streams_gives_nothing(clips):
    assert StreamSource().read(clips["video9770"], 11.0, lambda m: None) == []


def test_stream_language_tags_and_dialogue_markup():
    warnings: list[str] = []
    assert stream_language({"language": "ger"}, "x", warnings.append) == "de"
    assert stream_language({"language": "und"}, "x", warnings.append) == ""
    assert stream_language({}, "x", warnings.append) == ""
    assert not warnings
    assert stream_language({"language": "qaa"}, "talk.mkv (subtitle stream 2)", warnings.append) == ""
    assert warnings == ["talk.mkv (subtitle stream 2): language tag 'qaa' is not a language c2kd knows; its language "
                        "is left unknown"]
    assert dialogue_text(b"{\\i1}Hallo{\\i0}\\Nzweite <b>Zeile</b>") == "Hallo zweite Zeile"
