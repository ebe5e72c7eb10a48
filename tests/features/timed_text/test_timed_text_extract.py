"""``c2kd extract`` stores frames and timed text in one pass: a real clip with a sidecar ``.srt``, a real clip with
subtitle streams muxed in, a video of synthesized speech transcribed by pocketsphinx; reruns do nothing twice;
bad subtitle files and missing engines cost no frames and no timed text already stored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from timedkit import espeak, mux_subtitles, speech_span, srt_text, vtt_text, write_talking_video

from c2kd.data.features import FeatureStore
from c2kd.data.timed_text import FOLDER, TimedText
from c2kd.errors import DataError
from c2kd.features.extract import ExtractConfig, extract_videos
from c2kd.features.timed_text.step import TimedTextSettings
from c2kd_testkit import assert_one_line_error, run_c2kd

SIDECAR = [(0.5, 3.0, "Ein Mann zeigt auf eine Karte"), (6.0, 9.5, "Er erklärt den Weg")]
MUXED = [(1.0, 4.0, "Un homme parle"), (8.0, 10.0, "de la plage")]
SENTENCE = "Two men are playing football in the park."


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, clips) -> dict:
    """video9770 (real, with audio) + its German sidecar; video9771 with a French stream muxed in (talk.mkv);
    speech.mp4: espeak-ng's voice from 1.5 s."""
    root = tmp_path_factory.mktemp("corpus") / "videos"
    root.mkdir()
    shutil.copy(clips["video9770"], root / "video9770.mp4")
    (root / "video9770.de.srt").write_text(srt_text(SIDECAR), encoding="utf-8")
    (root / "fr.vtt").write_text(vtt_text(MUXED), encoding="utf-8")
    mux_subtitles(clips["video9771"], root / "talk.mkv", [(root / "fr.vtt", "fra")])
    (root / "fr.vtt").unlink()
    samples, rate = espeak(SENTENCE, root / "speech.wav")
    write_talking_video(root / "speech.mp4", samples, rate, 1.5, 6.0)
    (root / "speech.wav").unlink()
    return {"root": root, "speech": speech_span(samples, rate, 1.5)}


@pytest.fixture(scope="module")
def encoder(tiny_onnx):
    from c2kd.features.encoders import build_frame_encoder

    return build_frame_encoder("onnx", model=str(tiny_onnx), size=48)


def _extract(root: Path, encoder, out: Path, **settings):
    timed = TimedTextSettings(**settings)
    return extract_videos([root], encoder, out, ExtractConfig(workers=0, progress=False, timed_text=timed))


def _texts(store: Path, video: str, source_prefix: str = "") -> list[tuple[float, float, str, str]]:
    return [(round(s.start, 3), round(s.end, 3), s.text, s.language) for s in TimedText(store)[video]
            if s.source.startswith(source_prefix)]


def test_frames_and_timed_text_of_three_sources_in_one_pass_then_nothing_twice(tmp_path, corpus, encoder):
    pytest.importorskip("pocketsphinx")
    out = tmp_path / "store"
    report = _extract(corpus["root"], encoder, out, speech="pocketsphinx")
    assert report.done == 3 and not report.failed
    assert report.timed_text is not None and report.timed_text.videos == 3 and not report.timed_text.failed
    assert sorted(FeatureStore(out).ids) == ["speech", "talk", "video9770"]
    assert json.loads((out / "store.json").read_text())["timed_text"]["folder"] == FOLDER
    assert _texts(out, "video9770", "sidecar:") == [(*cue, "de") for cue in SIDECAR]
    origin = 0.033  # video9771's picture starts at 33 ms: the player's 0 (see test_subtitle_streams)
    assert _texts(out, "talk") == [(round(a - origin, 3), round(b - origin, 3), t, "fr") for a, b, t in MUXED]
    first, last = corpus["speech"]
    spoken = TimedText(out)["speech"]
    assert spoken and all(first - 0.3 <= s.start < s.end <= last + 0.3 and s.language == "en" for s in spoken)
    assert TimedText(out).sources("talk") == ["sidecar", "streams", "speech:pocketsphinx"]
    shards = sorted((out / FOLDER).iterdir())

    again = _extract(corpus["root"], encoder, out, speech="pocketsphinx")
    assert again.done == 0 and again.already_done == 3
    assert again.timed_text is not None and again.timed_text.already_done == 3 and again.timed_text.videos == 0
    assert sorted((out / FOLDER).iterdir()) == shards


def test_a_source_added_later_reads_the_stored_videos_without_their_frames(tmp_path, corpus, encoder):
    pytest.importorskip("pocketsphinx")
    out = tmp_path / "store"
    _extract(corpus["root"], encoder, out)
    assert not any(s.source.startswith("speech") for v in TimedText(out) for s in TimedText(out)[v])
    report = _extract(corpus["root"], encoder, out, speech="pocketsphinx")
    assert report.done == 0 and report.already_done == 3 and report.timed_text is not None
    assert report.timed_text.videos == 3
    assert _texts(out, "video9770", "sidecar:") == [(*cue, "de") for cue in SIDECAR]
    assert TimedText(out)["speech"] and all(s.source == "speech:pocketsphinx" for s in TimedText(out)["speech"])


def test_a_bad_subtitle_file_keeps_the_frames_and_what_was_stored_and_is_retried(tmp_path, clips, encoder):
    pytest.importorskip("pocketsphinx")
    root = tmp_path / "videos"
    root.mkdir()
    shutil.copy(clips["video9770"], root / "video9770.mp4")
    shutil.copy(clips["video9771"], root / "video9771.mp4")
    good = root / "video9770.srt"
    good.write_text(srt_text([*SIDECAR, (10.0, 20.0, "läuft über das Ende")]), encoding="utf-8")
    (root / "video9771.xx.srt").write_text(srt_text([(1.0, 2.0, "tag unknown")]), encoding="utf-8")
    out = tmp_path / "store"
    report = _extract(root, encoder, out)
    assert report.timed_text is not None and not report.timed_text.failed
    warnings = report.timed_text.warnings
    assert any(str(good) in w and "past the end of the video (11.0 s)" in w for w in warnings)
    assert any(str(root / "video9771.xx.srt") in w and "'xx'" in w for w in warnings)
    assert _texts(out, "video9770")[-1] == (10.0, 11.0, "läuft über das Ende", "")
    assert _texts(out, "video9771") == [(1.0, 2.0, "tag unknown", "")]
    before = TimedText(out)["video9770"]
    frames = {v: FeatureStore(out)[v].copy() for v in FeatureStore(out).ids}

    good.write_bytes(bytes((i * 197 + 89) % 256 for i in range(600)))  # bytes no text encoding reads
    assert _extract(root, encoder, out).timed_text.already_done == 2  # type: ignore[union-attr]
    # a new source reads every video again: the damaged file fails, its video keeps its frames and its text
    report = _extract(root, encoder, out, speech="pocketsphinx")
    assert report.timed_text is not None and report.timed_text.videos == 1
    assert [(Path(p).name, "unknown text encoding" in reason and str(good) in reason)
            for p, reason in report.timed_text.failed] == [("video9770.mp4", True)]
    failed = json.loads((out / "manifests" / "part.json").read_text())["timed_text_failed"]
    assert list(failed) == [str(root / "video9770.mp4")]
    assert TimedText(out)["video9770"] == before
    assert TimedText(out).sources("video9771") == ["sidecar", "streams", "speech:pocketsphinx"]
    assert all((FeatureStore(out)[v] == f).all() for v, f in frames.items())

    good.write_text(srt_text([(2.0, 3.0, "repariert")]), encoding="utf-8")
    report = _extract(root, encoder, out, speech="pocketsphinx")
    assert report.already_done == 2 and report.timed_text is not None and report.timed_text.videos == 1
    assert (2.0, 3.0, "repariert", "") in _texts(out, "video9770")
    assert not json.loads((out / "manifests" / "part.json").read_text())["timed_text_failed"]


def test_shard_reports_as_ray_actors_send_them_merge_into_the_runs_timed_text(tmp_path, corpus, encoder):
    """Each Ray unit is one shard whose report travels as JSON; the merged report counts every shard's."""
    import dataclasses

    from c2kd.features.extract import extract_jobs
    from c2kd.features.jobs import discover_videos, make_jobs, select_shard
    from c2kd.features.ray_engine import merge_reports

    jobs = make_jobs(discover_videos([corpus["root"]]))
    out = tmp_path / "store"
    parts = []
    for index in range(2):
        config = ExtractConfig(workers=0, progress=False, shard=(index, 2), timed_text=TimedTextSettings())
        report = extract_jobs(select_shard(jobs, index, 2), encoder, out, config)
        parts.append(json.loads(json.dumps(dataclasses.asdict(report))))
    merged = merge_reports(out, parts, 2, 1.0)
    assert merged.done == 3 and merged.timed_text is not None
    assert (merged.timed_text.videos, merged.timed_text.segments) == (3, len(SIDECAR) + len(MUXED))
    assert sorted(TimedText(out).ids) == ["speech", "talk", "video9770"]


def test_damaged_timed_text_is_one_clear_error(tmp_path, clips, encoder):
    root = tmp_path / "videos"
    root.mkdir()
    shutil.copy(clips["video9770"], root / "video9770.mp4")
    (root / "video9770.srt").write_text(srt_text(SIDECAR), encoding="utf-8")
    out = tmp_path / "store"
    _extract(root, encoder, out)
    shard = next((out / FOLDER).glob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:40])
    with pytest.raises(DataError, match=rf"{shard.name}: damaged timed-text shard .* delete it and rerun"):
        TimedText(out)


def test_cli_extracts_timed_text_and_refuses_a_missing_engine_before_any_work(tmp_path, clips, tiny_onnx):
    from videokit import onnx_cli_args

    root = tmp_path / "videos"
    root.mkdir()
    shutil.copy(clips["video9770"], root / "video9770.mp4")
    (root / "video9770.de.srt").write_text(srt_text(SIDECAR), encoding="utf-8")
    out = tmp_path / "store"
    proc = run_c2kd("extract", str(root), "--out", str(out), *onnx_cli_args(tiny_onnx), "--workers", "0",
                    "--speech", "no-such-engine")
    assert_one_line_error(proc, "unknown speech engine 'no-such-engine'", "pocketsphinx")
    assert not out.exists()
    proc = run_c2kd("extract", str(root), "--out", str(out), *onnx_cli_args(tiny_onnx), "--workers", "0",
                    "--speech-model", "x")
    assert_one_line_error(proc, "--speech-model and --speech-language are options of --speech ENGINE")
    proc = run_c2kd("extract", str(root), "--out", str(out), *onnx_cli_args(tiny_onnx), "--workers", "0")
    assert proc.returncode == 0, proc.stderr
    assert "timed text: 1 video(s) read (2 segments)" in proc.stdout
    assert _texts(out, "video9770") == [(*cue, "de") for cue in SIDECAR]
