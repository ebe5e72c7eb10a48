"""Speech recognised in a video's audio track: pocketsphinx (real English weights from its wheel) on speech that
espeak-ng synthesized, muxed into a real video; Whisper through transformers' pipeline with a tiny random-config
model (plumbing: segments come back inside the audio); engines that are not installed fail in one line."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from timedkit import espeak, speech_span, write_talking_video
from whisperkit import make_tiny_whisper

from c2kd.errors import ConfigError, MissingDependencyError
from c2kd.features.timed_text.speech import (
    SAMPLE_RATE,
    SPEECH_ENGINES,
    SpeechSource,
    check_engine,
    read_audio,
)

SENTENCE = "A dog runs on the beach. Two men are playing football in the park."
BEFORE, LENGTH = 2.0, 8.0


@pytest.fixture(scope="module")
def talking(tmp_path_factory):
    """(video, (first, last) second of speech): 2 s of silence, espeak-ng's voice, silence up to 8 s."""
    folder = tmp_path_factory.mktemp("speech")
    samples, rate = espeak(SENTENCE, folder / "speech.wav")
    return write_talking_video(folder / "talk.mp4", samples, rate, BEFORE, LENGTH), speech_span(samples, rate, BEFORE)


def test_the_audio_track_reads_back_as_16k_mono_with_the_speech_where_it_was_put(talking):
    video, (first, last) = talking
    audio = read_audio(video)
    assert audio is not None and audio.dtype == np.float32
    assert len(audio) / SAMPLE_RATE == pytest.approx(LENGTH, abs=0.1)
    loud = np.flatnonzero(np.abs(audio) > 0.01 * np.abs(audio).max()) / SAMPLE_RATE
    assert loud[0] == pytest.approx(first, abs=0.1) and loud[-1] == pytest.approx(last, abs=0.1)


def test_a_video_without_audio_gives_no_speech(clips):
    assert read_audio(clips["video9771"]) is None
    assert SpeechSource("pocketsphinx").read(clips["video9771"], 14.0, lambda m: None) == []


def test_pocketsphinx_transcribes_synthesized_speech_inside_its_span(talking):
    pytest.importorskip("pocketsphinx")
    video, (first, last) = talking
    segments = SpeechSource("pocketsphinx").read(video, LENGTH, lambda m: None)
    assert segments, "pocketsphinx found no speech in espeak-ng's voice"
    for s in segments:
        assert first - 0.3 <= s.start < s.end <= last + 0.3
        assert s.language == "en" and s.source == "speech:pocketsphinx" and s.text.strip()
    # it recognises espeak's voice poorly (about 90% word errors), but some words of the sentence come through
    heard = {w for s in segments for w in s.text.split()}
    assert heard & set(SENTENCE.lower().replace(".", "").split())


def test_pocketsphinx_refuses_other_languages():
    pytest.importorskip("pocketsphinx")
    with pytest.raises(ConfigError, match="English only"):
        SpeechSource("pocketsphinx", language="de")


def test_whisper_pipeline_returns_timed_segments_inside_the_audio(talking, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = make_tiny_whisper(tmp_path / "tiny-whisper")
    video, _ = talking
    segments = SpeechSource("whisper", model=str(model), language="de", device="cpu").read(video, LENGTH,
                                                                                            lambda m: None)
    assert segments  # random weights: any text, but the pipeline's timestamps come through
    for s in segments:
        assert 0.0 <= s.start < s.end <= LENGTH and s.language == "de" and s.source == "speech:whisper"
    assert [s.start for s in segments] == sorted(s.start for s in segments)


def test_a_whisper_model_that_cannot_be_loaded_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"--speech-model .*nothing-here: cannot load a Whisper model") as info:
        SpeechSource("whisper", model=str(tmp_path / "nothing-here"), device="cpu")
    assert "\n" not in str(info.value)


def test_an_engine_that_is_not_installed_or_not_known_is_one_line():
    with SPEECH_ENGINES.scoped():
        @SPEECH_ENGINES.register("missing-asr")
        class MissingEngine:
            name = "missing-asr"
            requires = "c2kd_no_such_asr_library"
            package = "no-such-asr"

        with pytest.raises(MissingDependencyError, match=r"--speech missing-asr: the package no-such-asr is not "
                                                         r"installed; install it with `pip install no-such-asr`"):
            check_engine(MissingEngine)
    with pytest.raises(ConfigError, match="unknown speech engine 'vosk'; choose one of whisper, faster-whisper, "
                                          "pocketsphinx"):
        SpeechSource("vosk")
    if importlib.util.find_spec("faster_whisper") is None:
        with pytest.raises(MissingDependencyError, match="pip install faster-whisper"):
            SpeechSource("faster-whisper")
