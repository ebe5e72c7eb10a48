"""The ``streams`` source: text subtitle streams inside the video's container, read with PyAV.

Text codecs (``subrip``, ``mov_text``, ``webvtt``, ``ass``/``ssa``, ``text``) are decoded by FFmpeg to ASS
dialogue, whose markup is removed. Each packet is one cue: its time and duration are the cue's (a cue with no
duration lasts until the next one, at most ``OPEN_CUE_SECONDS``). The language is the stream's ``language`` tag
(ISO 639-2, e.g. ``ger``; ``und`` or none = unknown). Picture subtitles (DVD, Blu-ray PGS, DVB) are not text:
a warning names them (they would need OCR).
"""

from __future__ import annotations

import re
from pathlib import Path

from c2kd.data.timed_text import UNKNOWN_LANGUAGE, Segment
from c2kd.errors import DataError, UnknownLanguageError, require
from c2kd.features.timed_text.sources import TIMED_TEXT_SOURCES
from c2kd.features.timed_text.subtitles import Warn, clean_cues
from c2kd.languages import normalize_language

#: seconds a cue without a duration lasts when no cue follows it
OPEN_CUE_SECONDS = 5.0
PICTURE_CODECS = frozenset({"dvd_subtitle", "dvdsub", "hdmv_pgs_subtitle", "pgssub", "dvb_subtitle", "dvbsub",
                            "xsub"})
_ASS_OVERRIDE = re.compile(r"\{[^}]*\}")


def stream_language(metadata: dict, where: str, warn: Warn) -> str:
    """The registry code of a stream's ``language`` tag ("" for none, ``und`` or an unknown code: warned)."""
    tag = str(metadata.get("language") or "").strip()
    if not tag or tag.lower() in ("und", "mis", "mul", "zxx"):
        return UNKNOWN_LANGUAGE
    try:
        return normalize_language(tag)
    except UnknownLanguageError:
        warn(f"{where}: language tag {tag!r} is not a language c2kd knows; its language is left unknown")
        return UNKNOWN_LANGUAGE


def dialogue_text(dialogue: bytes | str) -> str:
    """Plain text of an ASS dialogue payload as FFmpeg decodes text subtitles (``{\\i1}`` tags removed, ``\\N``
    line breaks become spaces)."""
    text = dialogue.decode("utf-8", "replace") if isinstance(dialogue, bytes) else dialogue
    text = _ASS_OVERRIDE.sub("", text).replace("\\N", " ").replace("\\n", " ").replace("\\h", " ")
    return " ".join(re.sub(r"</?[a-zA-Z][^>]*>", "", text).split())


@TIMED_TEXT_SOURCES.register("streams")
class StreamSource:
    """Text subtitle streams of the container (all of them; ``language``: keep only this language's)."""

    key = "streams"

    def __init__(self, language: str | None = None) -> None:
        self.language = normalize_language(language) if language else None

    def read(self, video: Path, duration: float | None, warn: Warn) -> list[Segment]:
        av = require("av", "video", "reading subtitle streams")
        try:
            container = av.open(str(video))
        except Exception as exc:  # PyAV raises many FFmpegError subclasses, OSError...
            raise DataError(f"{video}: cannot open to read its subtitle streams ({type(exc).__name__})") from exc
        try:
            streams = list(container.streams.subtitles)
            if not streams:
                return []
            origin = container.start_time / 1_000_000 if container.start_time is not None else 0.0
            text_streams = {}
            for stream in streams:
                where = f"{video} (subtitle stream {stream.index})"
                codec = stream.codec_context.name
                if codec in PICTURE_CODECS:
                    warn(f"{where}: {codec} subtitles are pictures, not text; not read")
                    continue
                language = stream_language(dict(stream.metadata), where, warn)
                if self.language is None or language == self.language:
                    text_streams[stream.index] = (stream, where, language)
            if not text_streams:
                return []
            cues = _cues(container, [s for s, _, _ in text_streams.values()], origin, str(video))
            segments: list[Segment] = []
            for index, (_, where, language) in text_streams.items():
                segments += clean_cues(cues.get(index, []), where, language, duration, warn, f"stream:{index}")
            return sorted(segments, key=lambda s: (s.start, s.end))
        finally:
            container.close()


def _cues(container, streams: list, origin: float, where: str) -> dict[int, list[tuple[float, float, str]]]:
    """(start, end, text) of every packet of the subtitle ``streams`` (one pass over the file), by stream index."""
    timed: dict[int, list[tuple[float, float | None, str]]] = {s.index: [] for s in streams}
    try:
        for packet in container.demux(*streams):
            if packet.size == 0 or packet.pts is None:
                continue
            base = packet.time_base or packet.stream.time_base
            start = float(packet.pts * base) - origin
            end = start + float(packet.duration * base) if packet.duration else None
            texts = [dialogue_text(sub.dialogue) for sub in packet.decode() if hasattr(sub, "dialogue")]
            text = " ".join(t for t in texts if t)
            if text:
                timed[packet.stream.index].append((start, end, text))
    except Exception as exc:  # a damaged stream: FFmpeg errors of many kinds
        raise DataError(f"{where}: its subtitle streams cannot be read ({type(exc).__name__}: {exc})") from exc
    return {index: _close_open_cues(sorted(found, key=lambda c: c[0])) for index, found in timed.items()}


def _close_open_cues(timed: list[tuple[float, float | None, str]]) -> list[tuple[float, float, str]]:
    """Cues without a duration last until the next cue, at most ``OPEN_CUE_SECONDS``."""
    cues = []
    for i, (start, end, text) in enumerate(timed):
        if end is None:
            following = timed[i + 1][0] if i + 1 < len(timed) else start + OPEN_CUE_SECONDS
            end = min(following, start + OPEN_CUE_SECONDS)
        cues.append((start, end, text))
    return cues
