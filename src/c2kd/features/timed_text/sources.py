"""Sources of timed text for a video file, registered by name: ``sidecar``, ``streams``, ``speech``.

A source is built once per run (``TIMED_TEXT_SOURCES.get(name)(**options)``, where a missing optional library
fails at once, before any work) and then asked for each video: ``source.read(video, duration, warn)`` returns
its segments in time order; ``warn`` takes one line per problem, naming the file. A file the source cannot read
raises :class:`~c2kd.errors.DataError` (its message names the file): the extraction step keeps the video's
frames, lists the failure and asks again on the next run. ``source.key`` is what the store records as looked at.

A new source is one class with ``read`` and ``key``, decorated with ``@TIMED_TEXT_SOURCES.register(name)``, in a
module listed in ``modules`` below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from c2kd.data.timed_text import Segment
from c2kd.features.timed_text.subtitles import Warn
from c2kd.registry import Registry


class TimedTextSource(Protocol):
    """What the extraction step asks of a source."""

    key: str

    def read(self, video: Path, duration: float | None, warn: Warn) -> list[Segment]: ...


TIMED_TEXT_SOURCES = Registry[type](
    "timed-text source",
    modules=("c2kd.features.timed_text.sidecar", "c2kd.features.timed_text.streams",
             "c2kd.features.timed_text.speech"),
    hint="sidecar: subtitle files beside the video; streams: subtitle streams inside it; speech: --speech ENGINE",
)


def build_source(name: str, **options) -> TimedTextSource:
    """The source registered as ``name``, built with ``options`` (e.g. ``engine=`` for ``speech``)."""
    return TIMED_TEXT_SOURCES.get(name)(**options)
