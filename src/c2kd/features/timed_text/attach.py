"""Subtitle files attached to the videos of a store made without video files (``c2kd data subtitles``).

A file is named ``<video id>[.<lang>].srt|.vtt|.ass|.ssa`` (``video9770.srt``, ``video9770.de.vtt``). Every file is
read before anything is written: one file that cannot be read (unknown video, unknown encoding, no cue) is one
error naming it, and the store is left as it was. A file attached again replaces what it gave before; other
timed text of the video (other files, extracted subtitles or speech) is kept. The video's length (for cues past
its end) is its last frame's time plus one frame interval.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from c2kd.data.features import FeatureStore, store_root
from c2kd.data.timed_text import Segment, TimedText, TimedTextWriter
from c2kd.errors import DataError
from c2kd.features.timed_text.subtitles import SUBTITLE_FORMATS, language_tag, parse_subtitles
from c2kd.locking import exclusive_lock


@dataclass
class AttachReport:
    """What was attached: files, videos, segments; warnings (one line each, naming the file)."""

    store: str
    files: int = 0
    videos: int = 0
    segments: int = 0
    warnings: list[str] = field(default_factory=list)


def video_of(path: Path, ids: set[str]) -> str:
    """The video id a subtitle file's name gives (the longest id the name starts with, then a tag or nothing)."""
    stem = path.name[: -len(path.suffix)]
    candidates = [stem] + [stem[:i] for i in range(len(stem) - 1, 0, -1) if stem[i] == "."]
    for candidate in candidates:
        if candidate in ids:
            return candidate
    shown = ", ".join(sorted(ids)[:3]) + (", ..." if len(ids) > 3 else "")
    raise DataError(f"{path}: no video {stem.split('.')[0]!r} in the store (its videos: {shown}); name the file "
                    "<video id>[.<lang>].srt or .vtt")


def attach_subtitles(store: str | os.PathLike, files: Sequence[str | os.PathLike], encoding: str | None = None,
                     warn: Callable[[str], None] | None = None) -> AttachReport:
    """Attach subtitle ``files`` to the videos of ``store`` (a feature store or a dataset folder holding one)."""
    root = store_root(store)
    report = AttachReport(store=str(root))

    def note(message: str) -> None:
        report.warnings.append(message)
        if warn is not None:
            warn(message)

    features = FeatureStore(root)
    ids = set(features.ids)
    parsed: dict[str, list[tuple[str, list[Segment]]]] = {}
    for file in files:
        path = Path(file)
        if path.suffix.lower() not in SUBTITLE_FORMATS:
            raise DataError(f"{path}: not a subtitle file; give files ending in {', '.join(SUBTITLE_FORMATS)}")
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        video_id = video_of(path, ids)
        key = f"file:{path.name}"
        segments = parse_subtitles(path, language_tag(path, video_id, note), encoding,
                                   features.length(video_id), note, source=key)
        parsed.setdefault(video_id, []).append((key, segments))
    with exclusive_lock(root / ".subtitles.lock", "an attachment of subtitles to this store", subject=root):
        stored = TimedText(root)
        with TimedTextWriter(root, prefix="subtitles") as writer:
            for video_id, attached in parsed.items():
                keys = [key for key, _ in attached]
                segments = [s for s in stored[video_id] if s.source not in keys]
                sources = [k for k in stored.sources(video_id) if k not in keys] + keys
                for _, found in attached:
                    segments += found
                writer.add(video_id, segments, sources)
                report.videos += 1
                report.segments += sum(len(found) for _, found in attached)
    report.files = sum(len(a) for a in parsed.values())
    return report
