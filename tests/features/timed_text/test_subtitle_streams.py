"""Subtitle streams inside a container: a real clip with SRT and WebVTT subtitles muxed in by PyAV (stream
language tags ``ger`` and ``fre``) reads back as the files' cues, with their languages, on the frames' clock
(0 = the container's start, as a player shows it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from c2kd.features.timed_text.streams import StreamSource, dialogue_text, stream_language

GERMAN = [(1.0, 3.5, "Ein Mann spricht"), (5.0, 7.25, "über den Strand")]
FRENCH = [(2.0, 4.0, "Un homme parle"), (8.0, 9.5, "de la plage")]


def mux_subtitles(video: Path, out: Path, tracks: list[tuple[Path, str]]) -> Path:
    """``video``'s picture with each subtitle file of ``tracks`` as a stream tagged with its language (ISO 639-2),
    copied packet by packet into a Matroska file (FFmpeg's own SRT / WebVTT demuxers read the files)."""
    import av

    source = av.open(str(video))
    inputs = [(av.open(str(path)), language) for path, language in tracks]
    with av.open(str(out), "w") as muxed:  # every stream is added before the first packet writes the header
        picture = muxed.add_stream_from_template(source.streams.video[0])
        tracks = []
        for container, language in inputs:
            track = muxed.add_stream_from_template(container.streams.subtitles[0])
            track.metadata["language"] = language
            tracks.append(track)
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = picture
                muxed.mux(packet)
        for (container, _), track in zip(inputs, tracks):
            for packet in container.demux(container.streams.subtitles[0]):
                if packet.dts is not None:
                    packet.stream = track
                    muxed.mux(packet)
    for container, _ in inputs:
        container.close()
    source.close()
    return out


def _srt(cues) -> str:
    def stamp(t: float) -> str:
        ms = round(t * 1000)
        return f"00:{ms // 60000:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"
    return "".join(f"{i}\n{stamp(a)} --> {stamp(b)}\n{text}\n\n" for i, (a, b, text) in enumerate(cues, 1))


def _vtt(cues) -> str:
    return "WEBVTT\n\n" + _srt(cues).replace(",", ".")


@pytest.fixture(scope="module")
def muxed(tmp_path_factory, clips) -> Path:
    folder = tmp_path_factory.mktemp("muxed")
    (folder / "de.srt").write_text(_srt(GERMAN), encoding="utf-8")
    (folder / "fr.vtt").write_text(_vtt(FRENCH), encoding="utf-8")
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
