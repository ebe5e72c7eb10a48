"""The timed-text step of ``c2kd extract``: each video whose frames are in the store gets its timed text too.

It runs after the frames of a run are committed, under the same shard lock, and writes
:class:`~c2kd.data.timed_text.TimedTextWriter` shards with the same prefix. A video whose timed text the store
already holds from the same sources is skipped, so a rerun does nothing twice, and adding a source later
(``--speech``) reads every video again with all the sources. A source that cannot read a video's file (a
malformed subtitle file) leaves the video without timed text and is listed (``failed``, the manifest's
``timed_text_failed``); its frames stay, and the next run tries again. Warnings name the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from c2kd.data.features import FeatureStore
from c2kd.data.timed_text import TimedText, TimedTextWriter
from c2kd.errors import DataError
from c2kd.features.decode import VideoDecodeError, probe
from c2kd.features.jobs import VideoJob
from c2kd.features.timed_text.sources import TimedTextSource, build_source

#: the sources ``c2kd extract`` reads unless told otherwise (both cheap: no decoding)
DEFAULT_SOURCES = ("sidecar", "streams")


@dataclass
class TimedTextSettings:
    """Which sources the step reads. ``speech``: an engine name (``pocketsphinx``, ``whisper``...) or None."""

    sources: tuple[str, ...] = DEFAULT_SOURCES
    speech: str | None = None
    speech_model: str | None = None
    speech_language: str | None = None
    device: str | None = None
    subtitle_encoding: str | None = None
    flush_every: int = 64

    def check(self) -> None:
        """Fail now (one line) on an unknown source or engine, or an engine whose library is not installed."""
        from c2kd.features.timed_text.sources import TIMED_TEXT_SOURCES
        from c2kd.features.timed_text.speech import SPEECH_ENGINES, check_engine

        for name in self.sources:
            TIMED_TEXT_SOURCES.get(name)
        if self.speech is not None:
            check_engine(SPEECH_ENGINES.get(self.speech))

    def build(self) -> list[TimedTextSource]:
        """The sources, built on the first call and kept for the next ones (a speech model loads once per
        process: once per run, once per Ray actor however many units it extracts)."""
        cached = self.__dict__.get("_built")
        if cached is not None:
            return cached
        built = []
        for name in self.sources:
            options: dict[str, Any] = {"encoding": self.subtitle_encoding} if name == "sidecar" else {}
            built.append(build_source(name, **options))
        if self.speech is not None:
            built.append(build_source("speech", engine=self.speech, model=self.speech_model,
                                      language=self.speech_language, device=self.device))
        self.__dict__["_built"] = built
        return built

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (sent to a Ray actor) without the built sources: each process builds its own."""
        return {k: v for k, v in self.__dict__.items() if k != "_built"}


@dataclass
class TimedTextReport:
    """What the step did: videos read, segments stored, (path, reason) of the files it could not read, warnings."""

    videos: int = 0
    segments: int = 0
    already_done: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _duration(path: str, store: FeatureStore, video_id: str) -> float | None:
    """The video's length: its header's, else what its store knows (:meth:`FeatureStore.length`)."""
    try:
        duration = probe(path).duration
    except VideoDecodeError:
        duration = None
    if duration is None and video_id in store:
        duration = store.length(video_id)
    return duration


def _from(source: str, key: str) -> bool:
    """Whether a segment's ``source`` (``sidecar:talk.de.srt``) came from the source recorded as ``key``."""
    return source == key or source.startswith(f"{key}:")


def add_timed_text(jobs: Sequence[VideoJob], store: str | os.PathLike, prefix: str, settings: TimedTextSettings,
                   sources: list[TimedTextSource] | None = None,
                   warn: Callable[[str], None] | None = None) -> TimedTextReport:
    """Read the timed text of the ``jobs`` whose frames are in ``store`` and store it (see the module).

    Call it while holding the shard's lock (``c2kd extract`` does).
    """
    store = Path(store)
    sources = sources if sources is not None else settings.build()
    keys = [s.key for s in sources]
    report = TimedTextReport()

    def note(message: str) -> None:
        report.warnings.append(message)
        if warn is not None:
            warn(message)

    features, stored = FeatureStore(store), TimedText(store)
    with TimedTextWriter(store, prefix, flush_every=settings.flush_every) as writer:
        for job in jobs:
            if job.video_id not in features:
                continue  # its frames failed: nothing to attach timed text to
            if job.video_id in stored and set(keys) <= set(stored.sources(job.video_id)):
                report.already_done += 1
                continue
            duration = _duration(job.path, features, job.video_id)
            segments = []
            try:
                for source in sources:
                    segments += source.read(Path(job.path), duration, note)
            except DataError as exc:
                report.failed.append((job.path, str(exc)))
                note(f"no timed text stored for {job.video_id!r}: {exc}")
                continue
            kept = [s for s in stored[job.video_id] if not any(_from(s.source, key) for key in keys)]
            others = [k for k in stored.sources(job.video_id) if k not in keys]
            writer.add(job.video_id, kept + segments, others + keys)
            report.videos += 1
            report.segments += len(segments)
    return report
