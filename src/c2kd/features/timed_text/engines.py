"""Speech recognition engines of the ``speech`` source: Whisper (transformers), faster-whisper, pocketsphinx.

Each takes 16 kHz mono float32 audio and returns (start, end, text, language) segments in seconds. Libraries
are imported when an engine is built, with the pip command that installs a missing one.
"""

from __future__ import annotations

import importlib
import io
from typing import Any

import numpy as np

from c2kd.data.timed_text import UNKNOWN_LANGUAGE
from c2kd.errors import ConfigError, UnknownLanguageError
from c2kd.features.timed_text.speech import SAMPLE_RATE, SPEECH_ENGINES, check_engine
from c2kd.languages import ENGLISH, normalize_language

#: the Whisper model used when ``--speech-model`` is not given (multilingual, ~240 M parameters)
DEFAULT_WHISPER = "openai/whisper-small"
#: the faster-whisper model used when ``--speech-model`` is not given
DEFAULT_FASTER_WHISPER = "small"
#: pocketsphinx words that are not speech (sentence marks, silence, noises)
_SPHINX_FILLERS = ("<s>", "</s>", "<sil>", "[NOISE]", "<noise>", "++")


def _device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


@SPEECH_ENGINES.register("whisper")
class WhisperEngine:
    """Whisper through transformers' ASR pipeline with segment timestamps (audio past 30 s: Whisper's own
    sequential long-form decoding); fp16 on a GPU.

    ``model``: a hub id or a local folder (model, tokenizer and feature extractor); ``language``: the spoken
    language (default: Whisper detects it, and the segments are marked with it when the model says which).
    """

    name = "whisper"
    requires = "transformers"

    def __init__(self, model: str | None = None, language: str | None = None, device: str | None = None) -> None:
        import torch
        from transformers import pipeline

        self.device = _device(device)
        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        self.language = language
        try:
            self.pipe = pipeline("automatic-speech-recognition", model=model or DEFAULT_WHISPER, device=self.device,
                                 dtype=dtype)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--speech-model {model or DEFAULT_WHISPER}: cannot load a Whisper model from it "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); give a "
                              "hub id such as openai/whisper-small or a folder saved with save_pretrained") from exc

    def transcribe(self, audio: np.ndarray) -> list[tuple[float, float, str, str]]:
        generate: dict[str, Any] = {"task": "transcribe"}
        if self.language:
            generate["language"] = self.language
        out: Any = self.pipe({"raw": audio, "sampling_rate": SAMPLE_RATE}, return_timestamps=True,
                             generate_kwargs=generate)
        length = len(audio) / SAMPLE_RATE
        segments = []
        for chunk in out.get("chunks") or []:
            start, end = chunk.get("timestamp") or (None, None)
            if start is None:
                continue
            end = length if end is None or end < start else end  # the last segment of a cut-off chunk
            segments.append((float(start), float(end), str(chunk.get("text", "")), self.language or UNKNOWN_LANGUAGE))
        return segments


@SPEECH_ENGINES.register("faster-whisper")
class FasterWhisperEngine:
    """faster-whisper (CTranslate2): ``model`` a size (``small``, ``large-v3``) or a converted folder; float16 on
    a GPU, int8 on a CPU; the language Whisper detects marks the segments."""

    name = "faster-whisper"
    requires = "faster_whisper"
    package = "faster-whisper"

    def __init__(self, model: str | None = None, language: str | None = None, device: str | None = None) -> None:
        faster_whisper = _require_engine("faster_whisper", "faster-whisper")
        device = _device(device)
        self.language = language
        self.model = faster_whisper.WhisperModel(model or DEFAULT_FASTER_WHISPER, device=device.split(":")[0],
                                                 compute_type="float16" if device.startswith("cuda") else "int8")

    def transcribe(self, audio: np.ndarray) -> list[tuple[float, float, str, str]]:
        found, info = self.model.transcribe(audio, language=self.language)
        try:
            language = normalize_language(self.language or info.language)
        except UnknownLanguageError:
            language = UNKNOWN_LANGUAGE
        return [(float(s.start), float(s.end), str(s.text), language) for s in found]


@SPEECH_ENGINES.register("pocketsphinx")
class PocketSphinxEngine:
    """CMU pocketsphinx with the US English model its wheel ships (works offline, English only, rough): speech
    regions found by its voice activity detector, each decoded; a segment spans its first to its last word."""

    name = "pocketsphinx"
    requires = "pocketsphinx"

    def __init__(self, model: str | None = None, language: str | None = None, device: str | None = None) -> None:
        if language not in (None, ENGLISH):
            raise ConfigError(f"--speech pocketsphinx recognises English only, not {language!r}; use --speech "
                              "whisper or faster-whisper for other languages")
        self.sphinx = _require_engine("pocketsphinx", "pocketsphinx")
        self.model = model  # a model folder (hmm, lm, dict inside); None: the packaged US English one

    def _decoder(self):
        if self.model is None:
            return self.sphinx.Decoder(samprate=SAMPLE_RATE)
        from pathlib import Path

        folder = Path(self.model)
        dictionary = next(iter(sorted(folder.glob("*.dict"))), None)
        lm = next(iter(sorted(folder.glob("*.lm.bin"))), None)
        if not folder.is_dir() or dictionary is None or lm is None:
            raise ConfigError(f"--speech-model {self.model}: not a pocketsphinx model folder (an acoustic model "
                              "folder, a *.lm.bin and a *.dict); leave it out for the packaged English model")
        hmm = next(p for p in folder.iterdir() if p.is_dir())
        return self.sphinx.Decoder(samprate=SAMPLE_RATE, hmm=str(hmm), lm=str(lm), dict=str(dictionary))

    def transcribe(self, audio: np.ndarray) -> list[tuple[float, float, str, str]]:
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
        # a second of silence after the end closes a region that runs to the end of the audio
        pcm = np.concatenate([pcm, np.zeros(SAMPLE_RATE, np.int16)])
        decoder = self._decoder()
        segments = []
        for region in self.sphinx.Segmenter(sample_rate=SAMPLE_RATE).segment(io.BytesIO(pcm.tobytes())):
            decoder.start_utt()
            decoder.process_raw(region.pcm, full_utt=True)
            decoder.end_utt()
            frame = 1.0 / decoder.config["frate"]
            words = [w for w in decoder.seg() if w.word not in _SPHINX_FILLERS and not w.word.startswith("[")]
            if not words:
                continue
            text = " ".join(w.word.split("(")[0] for w in words)
            segments.append((region.start_time + words[0].start_frame * frame,
                             region.start_time + (words[-1].end_frame + 1) * frame, text, ENGLISH))
        return segments


def _require_engine(module: str, engine: str):
    """Import an engine's library, or fail naming ``--speech ENGINE`` and the pip command."""
    check_engine(SPEECH_ENGINES.get(engine))
    return importlib.import_module(module)
