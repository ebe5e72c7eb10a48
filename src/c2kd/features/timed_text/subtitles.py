"""Subtitle files (SRT, WebVTT, ASS/SSA) -> clean timed text segments, with a warning or an error naming the file.

Parsing is pysubs2's; around it, what subtitle players do with real files:

* encoding: UTF-8 (with or without BOM) or UTF-16 with a BOM; otherwise the encoding is guessed
  (charset-normalizer) and named in a warning; bytes no encoding explains are an error. ``encoding`` forces one.
* a negative time (``-00:00:01,000``, which pysubs2 would read as positive) is read as 0, with a warning;
* a cue that ends before it starts, or lasts no time, is skipped with a warning; exact repeats are dropped;
  overlapping cues are kept (two people speaking at once; WebVTT allows it) and sorted by start;
* cues past the end of the video are skipped, and ends past it clipped (a warning when a cue goes more than
  ``LATE_SLACK`` seconds past it: the wrong file, or subtitles for another cut);
* text: markup removed (``<i>``, ``{\\i1}``, WebVTT voice and class tags, HTML entities), lines joined by spaces;
  WebVTT NOTE / STYLE / REGION blocks are not text;
* an empty file (or one with no cue) gives no segments and a warning; a non-empty file with no readable cue is an
  error (:class:`SubtitleError`).
"""

from __future__ import annotations

import codecs
import html
import re
from collections.abc import Callable
from pathlib import Path

from c2kd.data.timed_text import UNKNOWN_LANGUAGE, Segment
from c2kd.errors import DataError, UnknownLanguageError
from c2kd.languages import normalize_language

#: subtitle file extension -> pysubs2 format
SUBTITLE_FORMATS = {".srt": "srt", ".vtt": "vtt", ".ass": "ass", ".ssa": "ssa"}
#: file-name tags that say what kind of subtitles a file holds, not their language (``talk.en.forced.srt``)
KIND_TAGS = frozenset({"forced", "sdh", "cc", "hi", "default", "full", "sub", "subs", "subtitles", "captions",
                       "auto", "original"})
#: seconds a cue may run past the video's end before it is worth a warning
LATE_SLACK = 1.0

Warn = Callable[[str], None]
_NEGATIVE_TIME = re.compile(r"(?m)(^|-->)([ \t]*)-[ \t]*(\d[\d:.,]*)")
_VTT_NON_CUE = re.compile(r"^(NOTE|STYLE|REGION)(\s|$)")


class SubtitleError(DataError):
    """A subtitle file that cannot be read (the message names the file and the fix)."""


def _ignore(message: str) -> None:
    """The default warning sink of library calls: warnings are dropped unless a caller collects them."""


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes) // 60:02d}:{int(minutes) % 60:02d}:{secs:06.3f}"


def decode_subtitle_bytes(path: Path, data: bytes, encoding: str | None = None, warn: Warn = _ignore) -> str:
    """The text of a subtitle file: forced ``encoding``, else BOM / UTF-8, else the guessed encoding (warned)."""
    if encoding is not None:
        try:
            return data.decode(encoding)
        except LookupError:
            raise SubtitleError(f"{path}: unknown text encoding {encoding!r}; give one Python knows, such as "
                                "utf-8, cp1252 or latin-1") from None
        except UnicodeDecodeError as exc:
            raise SubtitleError(f"{path}: not {encoding} text (byte {exc.start}); give the file's real encoding, "
                                "or re-save it as UTF-8") from None
    for bom, name in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                      (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(name)
            except UnicodeDecodeError:
                break
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    import charset_normalizer

    guess = charset_normalizer.from_bytes(data).best()
    if guess is None or guess.encoding is None or guess.chaos > 0.3:
        raise SubtitleError(f"{path}: unknown text encoding (not UTF-8 at byte {first_bad}, and no other encoding "
                            "reads it as text); re-save the file as UTF-8, or give its encoding "
                            "(--subtitle-encoding cp1252)")
    warn(f"{path}: not UTF-8; read as {guess.encoding} (a guess: give --subtitle-encoding if the text looks wrong)")
    return str(guess)


def _without_vtt_blocks(text: str) -> str:
    """WebVTT text without its NOTE, STYLE and REGION blocks (pysubs2 would read them as cue text)."""
    blocks = re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n").replace("\r", "\n"))
    return "\n\n".join(b for b in blocks if not _VTT_NON_CUE.match(b.lstrip("\n")))


def _plain(text: str, markup: str) -> str:
    if markup == "vtt":
        text = html.unescape(text)
    return " ".join(text.split())


def parse_subtitles(path: str | Path, language: str = UNKNOWN_LANGUAGE, encoding: str | None = None,
                    duration: float | None = None, warn: Warn = _ignore, source: str | None = None) -> list[Segment]:
    """The cues of one subtitle file as segments in time order (see the module's rules).

    ``duration``: the video's length in seconds (cues past it are skipped or clipped); ``source``: recorded on
    each segment (default ``sidecar:<file name>``).

    Raises:
        SubtitleError: an unreadable file (missing, unknown encoding or format, no readable cue in a non-empty file).
    """
    import pysubs2

    path = Path(path)
    fmt = SUBTITLE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SubtitleError(f"{path}: not a subtitle file this reader knows; give a file ending in "
                            f"{', '.join(SUBTITLE_FORMATS)}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SubtitleError(f"{path}: cannot read ({exc.strerror or exc})") from None
    source = source or f"sidecar:{path.name}"
    text = decode_subtitle_bytes(path, data, encoding, warn)
    if not text.strip():
        warn(f"{path}: empty subtitle file: no timed text from it")
        return []
    negative = [m.group(3) for m in _NEGATIVE_TIME.finditer(text)]
    if negative:
        text = _NEGATIVE_TIME.sub(lambda m: f"{m.group(1)}{m.group(2)}{_zero(m.group(3))}", text)
        warn(f"{path}: {len(negative)} negative time(s) ({', '.join('-' + t for t in negative[:3])}) read as 0")
    if fmt == "vtt":
        text = _without_vtt_blocks(text)
    try:
        subs = pysubs2.SSAFile.from_string(text, format_=fmt)
    except Exception as exc:  # pysubs2 raises its own errors, ValueError, KeyError... on malformed files
        raise SubtitleError(f"{path}: not a valid {fmt.upper()} file ({type(exc).__name__}: {exc}); fix or "
                            "remove it") from exc
    events = [e for e in subs if not e.is_comment]
    if not events:
        raise SubtitleError(f"{path}: no subtitle cue could be read: not a valid {fmt.upper()} file (a cue is a "
                            "time line such as 00:00:01,000 --> 00:00:02,500 followed by its text); fix or "
                            "remove it")
    raw = [(e.start / 1000.0, e.end / 1000.0, _plain(e.plaintext, fmt)) for e in events]
    return clean_cues(raw, path, language, duration, warn, source)


def _zero(stamp: str) -> str:
    """``00:00:00,000`` in the punctuation of ``stamp`` (a negative time read as the start)."""
    return re.sub(r"\d", "0", stamp)


def clean_cues(raw: list[tuple[float, float, str]], path: str | Path, language: str, duration: float | None,
               warn: Warn, source: str) -> list[Segment]:
    """Segments from (start, end, text) cues: invalid ones skipped, repeats dropped, ends clipped to the video;
    one warning line per kind of problem, naming the file."""
    backwards, empty_span, past_end, late, repeats = [], 0, 0, 0, 0
    seen: set[tuple[float, float, str]] = set()
    segments = []
    for start, end, text in raw:
        start = max(start, 0.0)
        if not text:
            continue
        if end < start:
            backwards.append(f"{_clock(start)} -> {_clock(end)}")
            continue
        if end == start:
            empty_span += 1
            continue
        if duration is not None:
            if start >= duration:
                past_end += 1
                continue
            if end > duration + LATE_SLACK:
                late += 1
            end = min(end, duration)
        key = (round(start, 3), round(end, 3), text)
        if key in seen:
            repeats += 1
            continue
        seen.add(key)
        segments.append(Segment(start, end, text, language, source))
    if backwards:
        warn(f"{path}: skipped {len(backwards)} cue(s) that end before they start ({', '.join(backwards[:3])})")
    if empty_span:
        warn(f"{path}: skipped {empty_span} cue(s) that last no time")
    if past_end or late:
        assert duration is not None
        warn(f"{path}: subtitles run past the end of the video ({duration:.1f} s): {past_end} cue(s) after it "
             f"skipped, {late} cut at it (subtitles of another cut of the video?)")
    if repeats:
        warn(f"{path}: dropped {repeats} repeated cue(s)")
    return sorted(segments, key=lambda s: (s.start, s.end))


def language_tag(subtitle: Path, video_stem: str, warn: Warn = _ignore) -> str:
    """The language a sidecar's name gives (``talk.de.srt``, ``talk.pt-BR.forced.vtt``), or "" when it gives none.

    The first tag between the video's name and the extension that is a language counts; kind tags (forced,
    sdh, cc...) are skipped; an unknown tag is a warning naming the file, and the language stays unknown.
    """
    rest = subtitle.name[len(video_stem):-len(subtitle.suffix)] if subtitle.suffix else ""
    tags = [t for t in rest.split(".") if t]
    unknown = []
    for tag in tags:
        try:
            return normalize_language(tag)
        except UnknownLanguageError:
            if tag.lower() not in KIND_TAGS:
                unknown.append(tag)
    if unknown:
        warn(f"{subtitle}: {unknown[0]!r} in its name is not a language code c2kd knows (`c2kd languages` lists "
             "them); its language is left unknown (rename it, e.g. talk.de.srt)")
    return UNKNOWN_LANGUAGE
