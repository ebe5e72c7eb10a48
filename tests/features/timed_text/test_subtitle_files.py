"""Subtitle files -> segments: SRT and WebVTT read as players show them, sidecar names and their language tags,
and malformed files (negative or backward times, overlaps, repeats, unknown encodings, empty files, cues past the
end of the video) giving one warning or one error that names the file."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from c2kd.data.timed_text import Segment
from c2kd.features.timed_text.sidecar import SidecarSource, sidecar_files
from c2kd.features.timed_text.subtitles import SubtitleError, language_tag, parse_subtitles


def _srt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def _srt(cues: list[tuple[float, float, str]]) -> str:
    """An SRT file written by hand (the format's definition), independent of the reader."""
    return "".join(f"{i}\n{_srt_time(a)} --> {_srt_time(b)}\n{text}\n\n" for i, (a, b, text) in enumerate(cues, 1))


def _collect() -> tuple[list[str], object]:
    messages: list[str] = []
    return messages, messages.append


def test_srt_cues_become_plain_text_segments_in_time_order(tmp_path):
    path = tmp_path / "talk.srt"
    path.write_text("1\r\n00:00:01,250 --> 00:00:03,500\r\nEin <i>Hund</i> rennt\r\nam Strand\r\n\r\n"
                    "2\r\n00:01:02,000 --> 01:00:00,000\r\n{\\an8}Zwei Männer\r\n", encoding="utf-8")
    segments = parse_subtitles(path, "de")
    assert segments == [Segment(1.25, 3.5, "Ein Hund rennt am Strand", "de", "sidecar:talk.srt"),
                        Segment(62.0, 3600.0, "Zwei Männer", "de", "sidecar:talk.srt")]


def test_webvtt_notes_voices_classes_and_entities_are_not_text(tmp_path):
    path = tmp_path / "talk.fr.vtt"
    path.write_text("WEBVTT - a header\n\nSTYLE\n::cue { color: red }\n\nNOTE the next cue is the first\n\n"
                    "intro\n00:01.000 --> 00:02.500 line:0 position:10%\n<v Anna>Bonjour</v> &amp; <c.loud>salut</c>\n\n"
                    "NOTE\nmore notes\n\n00:00:04.000 --> 00:00:05.000\nfin\n", encoding="utf-8")
    segments = parse_subtitles(path, "fr")
    assert [(s.start, s.end, s.text) for s in segments] == [(1.0, 2.5, "Bonjour & salut"), (4.0, 5.0, "fin")]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_cues_written_as_srt_read_back_exactly(tmp_path, seed):
    rng = random.Random(seed)
    cues = []
    for _ in range(rng.randint(1, 30)):
        start = rng.randint(0, 7_200_000)
        words = " ".join(rng.choice(["ja", "nein", "Straße", "ça", "猫", "ok"]) for _ in range(3))
        cues.append((start / 1000, (start + rng.randint(1, 20_000)) / 1000, words))
    cues = list(dict.fromkeys(cues))
    path = tmp_path / "random.srt"
    path.write_text(_srt(cues), encoding="utf-8")
    segments = parse_subtitles(path)
    assert [(s.start, s.end, s.text) for s in segments] == sorted(cues, key=lambda c: (c[0], c[1]))


def test_negative_backward_empty_repeated_and_overlapping_cues(tmp_path):
    path = tmp_path / "bad.srt"
    path.write_text("1\n-00:00:02,000 --> 00:00:01,000\nstarts before the video\n\n"
                    "2\n00:00:05,000 --> 00:00:04,000\nbackwards\n\n"
                    "3\n00:00:06,000 --> 00:00:06,000\nno time\n\n"
                    "4\n00:00:02,000 --> 00:00:07,000\nfirst speaker\n\n"
                    "5\n00:00:03,000 --> 00:00:04,000\nsecond speaker\n\n"
                    "6\n00:00:03,000 --> 00:00:04,000\nsecond speaker\n\n"
                    "7\n-00:00:09,000 --> -00:00:08,000\nbefore the video\n", encoding="utf-8")
    warnings, warn = _collect()
    segments = parse_subtitles(path, warn=warn)
    # the negative start is read as 0; the overlapping cues are both kept; the repeat, the backward cue, the
    # cue of no time and the cue wholly before 0 are dropped
    assert [(s.start, s.end, s.text) for s in segments] == [(0.0, 1.0, "starts before the video"),
                                                            (2.0, 7.0, "first speaker"), (3.0, 4.0, "second speaker")]
    assert all(str(path) in w and "\n" not in w for w in warnings)
    text = " | ".join(warnings)
    assert "negative time" in text and "end before they start (00:00:05.000 -> 00:00:04.000)" in text
    assert "last no time" in text and "repeated" in text


def test_cues_past_the_end_of_the_video_are_skipped_or_cut_with_a_warning(tmp_path):
    path = tmp_path / "long.srt"
    path.write_text(_srt([(1, 2, "inside"), (9, 14, "runs past"), (10.5, 10.9, "just inside"), (12, 13, "after")]),
                    encoding="utf-8")
    warnings, warn = _collect()
    segments = parse_subtitles(path, duration=11.0, warn=warn)
    assert [(s.start, s.end, s.text) for s in segments] == [(1, 2, "inside"), (9, 11.0, "runs past"),
                                                            (10.5, 10.9, "just inside")]
    assert len(warnings) == 1 and str(path) in warnings[0] and "past the end of the video (11.0 s)" in warnings[0]
    assert "1 cue(s) after it skipped, 1 cut at it" in warnings[0]


def test_encodings_boms_guesses_and_unknown_bytes(tmp_path):
    cues = [(1.0, 2.0, "Привет, как дела? Это русский текст субтитров, довольно длинный.")]
    for name, encoding in [("bom8.srt", "utf-8-sig"), ("bom16.srt", "utf-16")]:
        (tmp_path / name).write_bytes(_srt(cues).encode(encoding))
        warnings, warn = _collect()
        assert [s.text for s in parse_subtitles(tmp_path / name, warn=warn)] == [cues[0][2]] and not warnings
    legacy = tmp_path / "cyrillic.srt"
    legacy.write_bytes(_srt(cues).encode("cp1251"))
    warnings, warn = _collect()
    assert [s.text for s in parse_subtitles(legacy, warn=warn)] == [cues[0][2]]
    assert len(warnings) == 1 and str(legacy) in warnings[0] and "cp1251" in warnings[0]
    assert [s.text for s in parse_subtitles(legacy, encoding="cp1251")] == [cues[0][2]]
    with pytest.raises(SubtitleError, match="not utf-8 text"):
        parse_subtitles(legacy, encoding="utf-8")
    with pytest.raises(SubtitleError, match="unknown text encoding 'klingon'"):
        parse_subtitles(legacy, encoding="klingon")
    noise = tmp_path / "noise.srt"
    rng = random.Random(3)
    noise.write_bytes(bytes(rng.randrange(256) for _ in range(400)))
    with pytest.raises(SubtitleError, match=r"noise\.srt: unknown text encoding") as info:
        parse_subtitles(noise)
    assert "\n" not in str(info.value) and "UTF-8" in str(info.value)


def test_an_empty_file_warns_and_a_file_without_cues_is_an_error(tmp_path):
    empty = tmp_path / "empty.srt"
    empty.write_bytes(b"")
    warnings, warn = _collect()
    assert parse_subtitles(empty, warn=warn) == [] and warnings == [f"{empty}: empty subtitle file: no timed text "
                                                                    "from it"]
    prose = tmp_path / "prose.vtt"
    prose.write_text("This is a letter, not subtitles.\nRegards\n", encoding="utf-8")
    with pytest.raises(SubtitleError, match=r"prose\.vtt: no subtitle cue could be read: not a valid VTT file"):
        parse_subtitles(prose)
    with pytest.raises(SubtitleError, match=r"talk\.txt: not a subtitle file"):
        parse_subtitles(tmp_path / "talk.txt")


@pytest.mark.parametrize("name, language", [("talk.srt", ""), ("talk.de.srt", "de"), ("talk.de.vtt", "de"),
                                            ("talk.pt-BR.forced.vtt", "pt"), ("talk.en.hi.srt", "en"),
                                            ("talk.hi.srt", "hi"), ("talk.forced.srt", ""), ("talk.ger.srt", "de"),
                                            ("talk.Deutsch.srt", "de")])
def test_language_tags_of_sidecar_names(name, language):
    warnings, warn = _collect()
    assert language_tag(Path(name), "talk", warn) == language and not warnings


def test_an_unknown_language_tag_warns_naming_the_file():
    warnings, warn = _collect()
    assert language_tag(Path("/v/talk.xx.srt"), "talk", warn) == ""
    assert len(warnings) == 1 and warnings[0].startswith("/v/talk.xx.srt: 'xx' in its name is not a language")


def test_sidecars_belong_to_the_video_named_like_them(tmp_path):
    for name in ["talk.mp4", "talk.srt", "talk.de.vtt", "talk.notes.txt", "talk.part2.mp4", "talk.part2.srt",
                 "talk[1].mp4", "talk[1].fr.srt", "other.srt"]:
        text = _srt([(0, 1, name)])
        if name.endswith(".vtt"):
            text = "WEBVTT\n\n" + text.replace(",", ".")
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert [p.name for p in sidecar_files(tmp_path / "talk.mp4")] == ["talk.de.vtt", "talk.srt"]
    assert [p.name for p in sidecar_files(tmp_path / "talk.part2.mp4")] == ["talk.part2.srt"]
    assert [p.name for p in sidecar_files(tmp_path / "talk[1].mp4")] == ["talk[1].fr.srt"]
    segments = SidecarSource().read(tmp_path / "talk.mp4", None, lambda m: None)
    assert [(s.text, s.language, s.source) for s in segments] == [("talk.de.vtt", "de", "sidecar:talk.de.vtt"),
                                                                  ("talk.srt", "", "sidecar:talk.srt")]
