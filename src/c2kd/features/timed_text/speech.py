"""The ``speech`` source: the video's audio track transcribed by a speech recognition engine (``--speech ENGINE``).

Engines register in :data:`SPEECH_ENGINES` (``whisper``: transformers' ASR pipeline; ``faster-whisper``;
``pocketsphinx``: English, with the real weights its PyPI wheel ships, in :mod:`.engines`). An engine gets
16 kHz mono float32 audio and returns (start, end, text, language) segments; the source decodes the audio with
PyAV, keeps segments inside the audio and cleans them like subtitle cues. A video without an audio track gives no
segments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from c2kd.data.timed_text import UNKNOWN_LANGUAGE, Segment
from c2kd.errors import DataError, MissingDependencyError, require
from c2kd.features.timed_text.sources import TIMED_TEXT_SOURCES
from c2kd.features.timed_text.subtitles import Warn, clean_cues
from c2kd.languages import normalize_language
from c2kd.registry import Registry

#: the sampling rate every engine reads
SAMPLE_RATE = 16_000


class SpeechEngine(Protocol):
    """A speech recogniser: ``transcribe(audio)`` with audio [N] float32 at :data:`SAMPLE_RATE`, in [-1, 1]."""

    name: str

    def transcribe(self, audio: np.ndarray) -> list[tuple[float, float, str, str]]: ...


SPEECH_ENGINES = Registry[type](
    "speech engine", modules=("c2kd.features.timed_text.engines",),
    hint="whisper (transformers, any hub id or folder: --speech-model), faster-whisper, pocketsphinx (English)")


def check_engine(engine: type) -> None:
    """Fail with the pip command when the library an engine class names in ``requires`` is not installed."""
    import importlib.util

    module = getattr(engine, "requires", None)
    if module is not None and importlib.util.find_spec(module) is None:
        package, name = getattr(engine, "package", module), getattr(engine, "name", module)
        raise MissingDependencyError(
            f"--speech {name}: the package {package} is not installed; install it with `pip install "
            f"{package}` (or choose another --speech engine: {', '.join(SPEECH_ENGINES.names())})")


def read_audio(path: str | Path, rate: int = SAMPLE_RATE) -> np.ndarray | None:
    """The first audio track of ``path`` as mono float32 at ``rate`` Hz, or None when it has none.

    Shape:
        -> [N] float32 in [-1, 1]
    """
    av = require("av", "video", "reading audio tracks")
    try:
        container = av.open(str(path))
    except Exception as exc:  # PyAV raises many FFmpegError subclasses, OSError...
        raise DataError(f"{path}: cannot open to read its audio ({type(exc).__name__})") from exc
    try:
        if not container.streams.audio:
            return None
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        chunks = []
        try:
            for frame in container.decode(container.streams.audio[0]):
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
        except Exception as exc:  # a damaged audio track
            raise DataError(f"{path}: its audio track cannot be decoded ({type(exc).__name__}: {exc})") from exc
    finally:
        container.close()
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return pcm.astype(np.float32) / 32768.0


@TIMED_TEXT_SOURCES.register("speech")
class SpeechSource:
    """Speech recognised in the audio track by ``engine`` (built once, with ``model``, ``language``, ``device``)."""

    def __init__(self, engine: str, model: str | None = None, language: str | None = None,
                 device: str | None = None) -> None:
        self.language = normalize_language(language) if language else None
        self.engine: SpeechEngine = SPEECH_ENGINES.get(engine)(model=model, language=self.language, device=device)
        self.key = f"speech:{engine}"

    def read(self, video: Path, duration: float | None, warn: Warn) -> list[Segment]:
        audio = read_audio(video)
        if audio is None or len(audio) == 0:
            return []
        length = len(audio) / SAMPLE_RATE
        limit = length if duration is None else min(length, duration)
        by_language: dict[str, list[tuple[float, float, str]]] = {}
        for start, end, text, language in self.engine.transcribe(audio):
            if start >= length:
                continue  # a segment after the audio ends: nothing was said there
            cue = (max(0.0, float(start)), min(float(end), length), " ".join(text.split()))
            by_language.setdefault(language or self.language or UNKNOWN_LANGUAGE, []).append(cue)
        segments = [s for language, cues in by_language.items()
                    for s in clean_cues(cues, video, language, limit, warn, self.key)]
        return sorted(segments, key=lambda s: (s.start, s.end))
