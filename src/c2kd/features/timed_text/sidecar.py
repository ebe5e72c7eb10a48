"""The ``sidecar`` source: subtitle files beside a video, named like it with an optional language tag.

For ``talks/intro.mp4``: ``talks/intro.srt``, ``talks/intro.de.srt``, ``talks/intro.de.vtt``,
``talks/intro.en.forced.ass``... The tag gives the language (:func:`~.subtitles.language_tag`); a file named like
another video of the folder (``intro.part2.srt`` beside ``intro.part2.mp4``) belongs to that video.
"""

from __future__ import annotations

from pathlib import Path

from c2kd.data.timed_text import Segment
from c2kd.features.jobs import VIDEO_EXTENSIONS
from c2kd.features.timed_text.sources import TIMED_TEXT_SOURCES
from c2kd.features.timed_text.subtitles import SUBTITLE_FORMATS, Warn, language_tag, parse_subtitles


def sidecar_files(video: Path) -> list[Path]:
    """Subtitle files beside ``video`` that belong to it, sorted by name."""
    folder, stem = video.parent, video.stem
    found = []
    for path in sorted(folder.glob(f"{_escape(stem)}.*")) if folder.is_dir() else []:
        if path.suffix.lower() not in SUBTITLE_FORMATS or not path.is_file():
            continue
        own_stem = path.name[: -len(path.suffix)]
        if own_stem != stem and any((folder / f"{own_stem}{ext}").exists() for ext in _extensions(folder)):
            continue  # the subtitles of another video whose name starts like this one's
        found.append(path)
    return found


def _escape(stem: str) -> str:
    """``stem`` with glob's special characters taken literally."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in stem)


def _extensions(folder: Path) -> set[str]:
    return {p.suffix for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS}


@TIMED_TEXT_SOURCES.register("sidecar")
class SidecarSource:
    """Subtitle files beside the video (``encoding``: force one text encoding for all of them)."""

    key = "sidecar"

    def __init__(self, encoding: str | None = None) -> None:
        self.encoding = encoding

    def read(self, video: Path, duration: float | None, warn: Warn) -> list[Segment]:
        segments: list[Segment] = []
        for path in sidecar_files(Path(video)):
            language = language_tag(path, Path(video).stem, warn)
            segments += parse_subtitles(path, language, self.encoding, duration, warn)
        return sorted(segments, key=lambda s: (s.start, s.end))
