"""In-order 1 FPS sampling: real clips, generated videos with known colours, VFR, missing pts, broken files."""

from __future__ import annotations

import numpy as np
import pytest
from videokit import colour, mean_colour, write_colour_seconds, write_video

from c2kd.features.decode import (
    VideoDecodeError,
    iter_sampled_frames,
    probe,
    sample_frames,
    sample_frames_by_seeking,
    sample_video,
    video_length,
)


@pytest.mark.parametrize("stem,count", [("video9770", 11), ("video9771", 14)])
def test_real_clips_one_frame_per_second_same_as_seeking(clips, stem, count):
    frames, times = sample_frames(clips[stem])
    assert len(frames) == count
    assert frames[0].shape == (240, 320, 3) and frames[0].dtype == np.uint8
    # the chosen frame is at or after second k, by less than one frame interval (30 fps)
    k = np.arange(count)
    assert np.all(times >= k - 1e-3) and np.all(times - k < 1 / 29.97 + 1e-3)
    # an independent sampler (one seek per second) picks exactly the same pixels
    seek_frames, seek_times = sample_frames_by_seeking(clips[stem])
    np.testing.assert_array_equal(times, seek_times)
    for a, b in zip(frames, seek_frames):
        np.testing.assert_array_equal(a, b)


def test_stream_starting_late_is_measured_from_the_container_start(clips):
    # video9771's video stream starts at 33 ms, as does its container: its first frame is second 0
    _, times = sample_frames(clips["video9771"])
    assert times[0] == 0.0
    info = probe(clips["video9771"])
    assert (info.width, info.height, info.codec, info.frames) == (320, 240, "h264", 419)


def test_known_colour_per_second(colour_video):
    frames, times = sample_frames(colour_video)
    np.testing.assert_allclose(times, np.arange(6), atol=1e-6)
    for k, image in enumerate(frames):
        np.testing.assert_allclose(mean_colour(image), colour(k), atol=6)


def test_two_frames_per_second(colour_video):
    frames, times = sample_frames(colour_video, fps=2.0)
    np.testing.assert_allclose(times, np.arange(12) / 2, atol=1e-6)
    for j, image in enumerate(frames):
        np.testing.assert_allclose(mean_colour(image), colour(j // 2), atol=6)


def test_fractional_fps_every_two_seconds(colour_video):
    frames, times = sample_frames(colour_video, fps=0.5)
    np.testing.assert_allclose(times, [0, 2, 4], atol=1e-6)
    assert [int(np.argmin([np.abs(mean_colour(f) - colour(c)).sum() for c in range(6)])) for f in frames] == [0, 2, 4]


def test_variable_frame_rate_takes_first_frame_at_or_after_each_second(tmp_path):
    times = [0.0, 0.3, 0.35, 1.2, 2.9, 3.0, 3.05, 4.5]
    path = write_video(tmp_path / "vfr.mp4", times, [colour(i) for i in range(len(times))])
    frames, sampled = sample_frames(path)
    # second 0 -> 0.0; 1 -> 1.2; 2 -> 2.9 (first at/after 2); 3 -> 3.0; 4 -> 4.5
    np.testing.assert_allclose(sampled, [0.0, 1.2, 2.9, 3.0, 4.5], atol=1e-6)
    expected = [0, 3, 4, 5, 7]
    for image, i in zip(frames, expected):
        np.testing.assert_allclose(mean_colour(image), colour(i), atol=6)


def test_gap_longer_than_a_second_repeats_the_frame_after_it(tmp_path):
    path = write_video(tmp_path / "gap.mp4", [0.0, 0.5, 3.2, 3.5], [colour(i) for i in range(4)])
    frames, sampled = sample_frames(path)
    # seconds 1, 2 and 3 all take the frame at 3.2: row k stays "second k"
    np.testing.assert_allclose(sampled, [0.0, 3.2, 3.2, 3.2], atol=1e-6)
    assert frames[1] is frames[2] is frames[3]


def test_missing_timestamps_use_the_frame_rate(tmp_path):
    # a raw H.264 stream has no container timestamps: PyAV gives pts=None for every frame
    path = write_colour_seconds(tmp_path / "raw.h264", seconds=3, fmt="h264")
    import av

    with av.open(str(path)) as container:
        assert all(f.pts is None for f in container.decode(video=0))
    frames, times = sample_frames(path)
    np.testing.assert_allclose(times, [0, 1, 2], atol=1e-6)
    for k, image in enumerate(frames):
        np.testing.assert_allclose(mean_colour(image), colour(k), atol=6)


def test_transform_is_applied_to_sampled_frames_only(colour_video):
    calls = []

    def shrink(image):
        calls.append(image.shape)
        return image[::2, ::2]

    items = list(iter_sampled_frames(colour_video, transform=shrink))
    assert len(calls) == len(items) == 6
    assert items[0].image.shape == (24, 32, 3)


def _truncated_faststart(tmp_path):
    path = write_colour_seconds(tmp_path / "fs.mp4", seconds=6, size=(128, 96),
                                options={"movflags": "faststart"})
    data = path.read_bytes()
    out = tmp_path / "fs_truncated.mp4"
    out.write_bytes(data[: len(data) // 2])
    return out


@pytest.mark.parametrize("case,reason", [
    ("empty", "empty file"),
    ("random", "cannot open"),
    ("missing", "file not found"),
    ("text", "cannot open"),
    ("head_of_real_clip", "cannot open"),     # the mp4 index (moov) is at the end: cut off
    ("truncated_faststart", "truncated"),     # index at the front, data cut in half
    ("audio_only", "no video stream"),
])
def test_broken_files_raise_a_decode_error_with_a_reason(tmp_path, clips, case, reason):
    path = tmp_path / f"{case}.mp4"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif case == "text":
        path.write_text("not a video\n")
    elif case == "head_of_real_clip":
        path.write_bytes(clips["video9770"].read_bytes()[:200_000])
    elif case == "truncated_faststart":
        path = _truncated_faststart(tmp_path)
    elif case == "audio_only":
        import av

        with av.open(str(path), "w") as container:
            stream = container.add_stream("aac", rate=16000)
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            for _ in range(8):
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    with pytest.raises(VideoDecodeError) as err:
        sample_frames(path)
    assert reason in err.value.reason
    assert str(path) in str(err.value)


@pytest.mark.parametrize("name,fmt,stated", [
    ("odd.mp4", None, "the stream"),        # MP4: the video stream states its duration
    ("odd.mkv", None, "the container"),     # Matroska: only the container does
    ("odd.h264", "h264", None),             # a raw stream states nothing: where its last frame ends
])
def test_the_length_of_a_video_is_its_own_not_its_last_sample_plus_a_second(tmp_path, name, fmt, stated):
    """73 frames at 10 frame/s are 7.3 s long; sampled at 1 frame/s the last row starts at 7 s, so the old
    estimate (last row + one step) said 8 s."""
    import av

    path = write_video(tmp_path / name, [i / 10 for i in range(73)], [colour(i // 10) for i in range(73)],
                       fmt=fmt)
    with av.open(str(path)) as container:  # which of its headers states a length (read with PyAV itself)
        from_stream, from_container = container.streams.video[0].duration, container.duration
    assert {"the stream": from_stream is not None,
            "the container": from_stream is None and from_container is not None,
            None: from_stream is None and from_container is None}[stated]
    frames, times, length = sample_video(path)
    assert len(frames) == 8 and times[-1] == pytest.approx(7.0)
    assert length == pytest.approx(7.3, abs=0.1 / 2)  # within half a frame


def test_a_header_that_ends_before_the_last_frame_is_not_believed():
    assert video_length(7.3, 7.0, 0.1) == 7.3
    assert video_length(5.0, 7.0, 0.1) == pytest.approx(7.1)  # a header shorter than the frames decoded
    assert video_length(None, 7.2, 0.1) == pytest.approx(7.3)
    assert video_length(None, None, 0.04) == pytest.approx(0.04)
