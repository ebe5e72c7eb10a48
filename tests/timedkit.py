"""Helpers of the timed-text tests: subtitle files written by hand, subtitle streams muxed into a real video
with PyAV, English speech synthesized by espeak-ng in a video's audio track."""

from __future__ import annotations

import shutil
import subprocess
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest


def espeak(text: str, out: Path) -> tuple[np.ndarray, int]:
    """``text`` spoken by espeak-ng (a Debian package; .ci/run installs it): (samples [N] int16, rate)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    subprocess.run(["espeak-ng", "-w", str(out), text], check=True, capture_output=True, timeout=60)
    with wave.open(str(out)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), np.int16), w.getframerate()


def speech_span(samples: np.ndarray, rate: int, offset: float) -> tuple[float, float]:
    """First and last moment (seconds, plus ``offset``) where the voice is louder than 1% of its peak."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 0.01 * np.abs(samples.astype(np.int32)).max())
    return offset + loud[0] / rate, offset + (loud[-1] + 1) / rate


def write_talking_video(path: Path, samples: np.ndarray, rate: int, before: float, seconds: float) -> Path:
    """A ``seconds`` long video (grey frames at 5 frame/s, H.264) whose AAC audio is silence, then ``samples``
    starting at ``before`` seconds, then silence."""
    import av

    audio = np.zeros(int(seconds * rate), np.int16)
    start = int(before * rate)
    audio[start: start + len(samples)] = samples[: len(audio) - start]
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=5)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = container.add_stream("aac", rate=rate)
        sound.layout = "mono"
        for i in range(int(seconds * 5)):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 100 + i % 50, np.uint8), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, 5)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        step = 1024
        for i in range(0, len(audio), step):
            chunk = audio[i: i + step].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, i, Fraction(1, rate)
            for packet in sound.encode(frame):
                container.mux(packet)
        for packet in sound.encode():
            container.mux(packet)
    return path


def srt_text(cues) -> str:
    """An SRT file of (start, end, text) cues, written from the format's definition (independent of the reader)."""
    def stamp(t: float) -> str:
        ms = round(t * 1000)
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"
    return "".join(f"{i}\n{stamp(a)} --> {stamp(b)}\n{text}\n\n" for i, (a, b, text) in enumerate(cues, 1))


def vtt_text(cues) -> str:
    """The same cues as a WebVTT file."""
    return "WEBVTT\n\n" + srt_text(cues).replace(",", ".")


def mux_subtitles(video: Path, out: Path, tracks: list[tuple[Path, str]]) -> Path:
    """``video``'s picture with each subtitle file of ``tracks`` as a stream tagged with its language (ISO 639-2),
    copied packet by packet into a Matroska file (FFmpeg's own SRT / WebVTT demuxers read the files)."""
    import av

    source = av.open(str(video))
    inputs = [(av.open(str(path)), language) for path, language in tracks]
    with av.open(str(out), "w") as muxed:  # every stream is added before the first packet writes the header
        picture = muxed.add_stream_from_template(source.streams.video[0])
        tracks_out = []
        for container, language in inputs:
            track = muxed.add_stream_from_template(container.streams.subtitles[0])
            track.metadata["language"] = language
            tracks_out.append(track)
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = picture
                muxed.mux(packet)
        for (container, _), track in zip(inputs, tracks_out):
            for packet in container.demux(container.streams.subtitles[0]):
                if packet.dts is not None:
                    packet.stream = track
                    muxed.mux(packet)
    for container, _ in inputs:
        container.close()
    source.close()
    return out


#: the smallest ASS header FFmpeg's mov_text encoder opens with (styles of the text it would encode)
_ASS_HEADER = (b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\nFormat: Name, "
               b"Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
               b"Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, "
               b"MarginL, MarginR, MarginV, Encoding\nStyle: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,"
               b"100,100,0,0,1,1,0,2,10,10,10,0\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, "
               b"MarginR, MarginV, Effect, Text\n")


def mux_mov_text(video: Path, out: Path, cues, language: str) -> Path:
    """``video``'s picture in an MP4 with a ``mov_text`` stream (3GPP timed text: each sample is the text's
    16-bit big-endian byte length, then the UTF-8 text), one packet per (start, end, text) cue."""
    import struct

    import av

    with av.open(str(video)) as source, av.open(str(out), "w") as muxed:
        picture = muxed.add_stream_from_template(source.streams.video[0])
        track = muxed.add_stream("mov_text")
        track.codec_context.subtitle_header = _ASS_HEADER
        track.time_base = Fraction(1, 1000)
        track.metadata["language"] = language
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = picture
                muxed.mux(packet)
        for start, end, text in cues:
            data = text.encode("utf-8")
            packet = av.Packet(struct.pack(">H", len(data)) + data)
            packet.pts = packet.dts = round(start * 1000)
            packet.duration = round((end - start) * 1000)
            packet.time_base = Fraction(1, 1000)
            packet.stream = track
            muxed.mux(packet)
    return out
