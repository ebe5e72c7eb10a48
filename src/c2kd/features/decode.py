"""Decode a video file in order with PyAV and sample one frame per ``1/fps`` seconds.

The sampler reads every frame once, front to back (no seeking: on short clips one seek per sampled second costs
about 4x more than decoding everything), and for each target time ``k / fps`` keeps the first decoded frame whose
presentation time is at or after it. Times are seconds on the player's timeline (the container's start time is
0). Variable frame rate is handled by construction (only timestamps matter); a frame without a timestamp gets
the previous one plus one frame interval; timestamps that go backwards are clamped to the last one.

The sampler's return value (what ``yield from`` gives) is the video's length in seconds: the stream's stated
duration, else the container's, else where the last decoded frame ends (:func:`video_length`).

Any failure (missing, empty, corrupt, truncated or unsupported file) raises :class:`VideoDecodeError`, whose
``reason`` is a one-line explanation for the extraction manifest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from c2kd.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import av

#: slack when comparing a frame time with a target time (far below any real frame interval)
TIME_EPS = 1e-3
#: a stream that declares N frames but yields fewer than ``TRUNCATED_FRACTION * N`` is reported as truncated
TRUNCATED_FRACTION = 0.9

Frame = np.ndarray  # H x W x 3 uint8 RGB


class VideoDecodeError(DataError):
    """A video file could not be decoded. ``reason`` is short enough for a manifest line."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class SampledFrame:
    """One sampled frame: target index ``k`` (time ``k / fps``), the chosen frame's time and its pixels.

    Shape:
        image: [H, W, 3] uint8 RGB (or whatever ``transform`` returned)
    """

    index: int
    time: float
    image: np.ndarray


@dataclass(frozen=True)
class VideoInfo:
    """What the demuxer says about a video stream (duration and frames may be unknown: None)."""

    width: int
    height: int
    codec: str
    duration: float | None
    frames: int | None
    average_rate: float | None


def _open(path: str | os.PathLike):
    av = _require_av()
    p = Path(path)
    if not p.exists():
        raise VideoDecodeError(path, "file not found")
    if p.is_dir():
        raise VideoDecodeError(path, "is a directory, not a video file")
    if p.stat().st_size == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")
    try:
        container = av.open(str(p), mode="r")
    except Exception as exc:  # PyAV raises many FFmpegError subclasses, OSError, ValueError...
        raise VideoDecodeError(path, f"cannot open as a video container ({_describe(exc)})") from exc
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, "no video stream in the file (audio only or unsupported container)")
    return container


def _require_av():
    from c2kd.errors import require

    return require("av", "video", "decoding video files")


def _video_stream(container, threads: int):
    """The first video stream of ``container``, set to decode with ``threads`` threads."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stream.thread_count = int(threads)
    return stream


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _seconds(value, time_base) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _origin(container, stream) -> float:
    """Time (seconds, stream clock) shown as 0 by a player: the container's start, else the stream's."""
    if container.start_time is not None:
        return container.start_time / 1_000_000
    start = _seconds(stream.start_time, stream.time_base)
    return start if start is not None else 0.0


def _stated_duration(container, stream) -> float | None:
    """The length the file states: the video stream's duration, else the container's (seconds; None if neither)."""
    duration = _seconds(stream.duration, stream.time_base)
    if not duration and container.duration is not None:
        duration = container.duration / 1_000_000  # av.time_base: container durations are in microseconds
    return duration or None


def video_length(stated: float | None, last_time: float | None, last_frame: float) -> float:
    """A video's length in seconds: what the file states, unless it ends before the last decoded frame starts
    (a wrong header); then, and without one, where the last frame ends (``last_time + last_frame``)."""
    decoded_end = (last_time or 0.0) + last_frame
    if stated is not None and stated > (last_time or 0.0):
        return float(stated)
    return float(decoded_end)


def _frame_seconds(frame, stream) -> float:
    """How long a decoded frame is shown: its own duration, else one interval of the stream's rate."""
    duration, time_base = getattr(frame, "duration", None), frame.time_base or stream.time_base
    if duration and time_base is not None:
        return float(duration * time_base)
    rate = stream.average_rate or stream.guessed_rate or stream.codec_context.framerate
    return float(1 / rate) if rate else 0.0


def _info(container, stream) -> VideoInfo:
    ctx = stream.codec_context
    duration = _stated_duration(container, stream)
    rate = stream.average_rate or stream.guessed_rate
    return VideoInfo(width=int(ctx.width or 0), height=int(ctx.height or 0), codec=str(ctx.name),
                     duration=duration, frames=int(stream.frames) or None,
                     average_rate=float(rate) if rate else None)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read a video's stream header (no decoding). Raises :class:`VideoDecodeError`."""
    container = _open(path)
    try:
        return _info(container, container.streams.video[0])
    finally:
        container.close()


def _frame_times(container, stream) -> Iterator[tuple[float, av.VideoFrame]]:
    """Decode all frames in order, yielding (seconds from the origin, av.VideoFrame)."""
    origin = _origin(container, stream)
    # Only used for frames without a timestamp (e.g. raw H.264): the codec's rate is the most reliable there.
    rate = stream.codec_context.framerate or stream.guessed_rate or stream.average_rate or Fraction(25)
    step = float(1 / rate)
    previous: float | None = None
    for frame in container.decode(stream):
        pts = frame.pts if frame.pts is not None else getattr(frame, "dts", None)
        time_base = frame.time_base or stream.time_base
        if pts is not None and time_base is not None:
            t = float(pts * time_base) - origin
        else:
            t = 0.0 if previous is None else previous + step
        if previous is not None and t < previous:
            t = previous
        previous = t
        yield t, frame


def iter_sampled_frames(path: str | os.PathLike, fps: float = 1.0,
                        transform: Callable[[np.ndarray], np.ndarray] | None = None,
                        threads: int = 0, check_truncation: bool = True
                        ) -> Generator[SampledFrame, None, float]:
    """Decode ``path`` in order and yield the first frame at or after each time ``k / fps``; return the video's
    length in seconds (see :func:`video_length`; ``length = yield from iter_sampled_frames(...)``).

    ``transform`` (e.g. an encoder's resize) is applied once per chosen frame, so callers holding many frames
    keep only small images. ``threads``: decoder threads (0 = FFmpeg's choice). When a time gap spans several
    targets, the frame after the gap is yielded for each of them (row ``k`` stays "second ``k``").

    Shape:
        yields SampledFrame with image [H, W, 3] uint8 RGB (before ``transform``)

    Raises:
        VideoDecodeError: the file is missing, empty, corrupt, truncated or has no decodable video stream.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    container = _open(path)
    try:
        stream = _video_stream(container, threads)
        info = _info(container, stream)
        decoded = 0
        last_time = None
        last_frame = 0.0
        k = 0
        try:
            for t, frame in _frame_times(container, stream):
                decoded += 1
                last_time = t
                last_frame = _frame_seconds(frame, stream)
                if t + TIME_EPS < k / fps:
                    continue
                image = frame.to_ndarray(format="rgb24")
                if transform is not None:
                    image = transform(image)
                while k / fps <= t + TIME_EPS:
                    yield SampledFrame(k, t, image)
                    k += 1
        except VideoDecodeError:
            raise
        except Exception as exc:
            where = f" after {last_time:.2f}s" if last_time is not None else ""
            raise VideoDecodeError(path, f"decoding failed{where} ({_describe(exc)}): corrupt or truncated") \
                from exc
        if decoded == 0:
            raise VideoDecodeError(path, "no frame could be decoded (corrupt or unsupported codec "
                                         f"{info.codec!r})")
        if check_truncation:
            _check_complete(path, info, decoded, last_time)
        return video_length(info.duration, last_time, last_frame)
    finally:
        container.close()


def _check_complete(path: str | os.PathLike, info: VideoInfo, decoded: int, last_time: float | None) -> None:
    if info.frames and decoded < TRUNCATED_FRACTION * info.frames - 1:
        raise VideoDecodeError(path, f"truncated: decoded {decoded} of the {info.frames} frames the header "
                                     "declares")
    if info.duration and last_time is not None and last_time + 2.0 < TRUNCATED_FRACTION * info.duration:
        raise VideoDecodeError(path, f"truncated: frames stop at {last_time:.1f}s of a {info.duration:.1f}s "
                                     "video")


class SampledVideo:
    """The sampled frames of a video to iterate over once; ``length`` is the video's length in seconds once the
    iteration has ended (the return value of :func:`iter_sampled_frames`, which a ``for`` loop drops)."""

    def __init__(self, sampler: Generator[SampledFrame, None, float]) -> None:
        self._sampler = sampler
        self.length: float | None = None

    def __iter__(self) -> Iterator[SampledFrame]:
        self.length = yield from self._sampler


def sample_video(path: str | os.PathLike, fps: float = 1.0,
                 transform: Callable[[np.ndarray], np.ndarray] | None = None,
                 threads: int = 0) -> tuple[list[np.ndarray], np.ndarray, float]:
    """All sampled frames of a video, their times and the video's length (see :func:`iter_sampled_frames`).

    Shape:
        -> (list of T images [H, W, 3] uint8, times [T] float32 seconds, length in seconds)
    """
    video = SampledVideo(iter_sampled_frames(path, fps, transform, threads))
    frames: list[np.ndarray] = []
    times: list[float] = []
    for item in video:
        frames.append(item.image)
        times.append(item.time)
    assert video.length is not None  # set when the loop ends
    return frames, np.asarray(times, dtype=np.float32), float(video.length)


def sample_frames(path: str | os.PathLike, fps: float = 1.0,
                  transform: Callable[[np.ndarray], np.ndarray] | None = None,
                  threads: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """All sampled frames of a video and their times (see :func:`iter_sampled_frames`).

    Shape:
        -> (list of T images [H, W, 3] uint8, times [T] float32 seconds)
    """
    frames, times, _ = sample_video(path, fps, transform, threads)
    return frames, times


def sample_frames_by_seeking(path: str | os.PathLike, fps: float = 1.0,
                             threads: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Reference sampler that seeks to each target time (one keyframe seek per sampled frame).

    Same choice rule as :func:`sample_frames` (first frame at or after ``k / fps``); kept to check it and to
    benchmark against it. Slower on every input we measured; do not use it for extraction.

    Shape:
        -> (list of T images [H, W, 3] uint8, times [T] float32 seconds)
    """
    container = _open(path)
    frames: list[np.ndarray] = []
    times: list[float] = []
    try:
        stream = _video_stream(container, threads)
        origin = _origin(container, stream)
        k = 0
        while True:
            target = k / fps
            container.seek(int((target + origin) / stream.time_base), stream=stream, backward=True,
                           any_frame=False)
            found = None
            for t, frame in _frame_times_after_seek(container, stream, origin):
                if t + TIME_EPS >= target:
                    found = (t, frame)
                    break
            if found is None:
                break
            t, frame = found
            image = frame.to_ndarray(format="rgb24")
            while k / fps <= t + TIME_EPS:
                frames.append(image)
                times.append(t)
                k += 1
    except VideoDecodeError:
        raise
    except Exception as exc:
        raise VideoDecodeError(path, f"decoding failed ({_describe(exc)})") from exc
    finally:
        container.close()
    return frames, np.asarray(times, dtype=np.float32)


def _frame_times_after_seek(container, stream, origin: float) -> Iterator[tuple[float, av.VideoFrame]]:
    for frame in container.decode(stream):
        if frame.pts is None:
            continue
        yield float(frame.pts * (frame.time_base or stream.time_base)) - origin, frame
