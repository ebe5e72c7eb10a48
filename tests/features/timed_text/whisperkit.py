"""A tiny Whisper with random weights, written offline as a hub folder the real transformers pipeline loads:
the real architecture and processor (log-mel features, byte-level BPE tokenizer with Whisper's special and
timestamp tokens, generation settings for timestamps), with the sizes cut down."""

from __future__ import annotations

import json
from pathlib import Path

LANGUAGES = ("en", "de", "fr")


def _byte_alphabet() -> list[str]:
    """The 256 printable characters byte-level BPE uses for the bytes (GPT-2's mapping, written from its rule)."""
    kept = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    extra = 0
    chars = {}
    for b in range(256):
        if b in kept:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def make_tiny_whisper(out: Path, seed: int = 0) -> Path:
    """Write a random-weight Whisper (1 encoder and 1 decoder layer, 16-d) with its processor to ``out``."""
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    out.mkdir(parents=True, exist_ok=True)
    tokens = _byte_alphabet()
    specials = ["<|endoftext|>", "<|startoftranscript|>", *(f"<|{code}|>" for code in LANGUAGES), "<|translate|>",
                "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
    stamps = [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    vocab = {t: i for i, t in enumerate(tokens)}
    for t in specials + stamps:
        vocab[t] = len(vocab)
    (out / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = WhisperTokenizer(str(out / "vocab.json"), str(out / "merges.txt"), unk_token="<|endoftext|>",
                                 bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": specials[1:]})
    tokenizer.add_tokens(stamps)  # plain added tokens, as in Whisper's own: ids past the last special one are times
    eot, sot, nots = vocab["<|endoftext|>"], vocab["<|startoftranscript|>"], vocab["<|notimestamps|>"]
    config = WhisperConfig(vocab_size=len(vocab), num_mel_bins=80, d_model=16, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                           decoder_ffn_dim=32, max_source_positions=1500, max_target_positions=64,
                           decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
                           begin_suppress_tokens=None, suppress_tokens=None)
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, max_length=48,
        no_timestamps_token_id=nots, max_initial_timestamp_index=50, is_multilingual=True,
        lang_to_id={f"<|{code}|>": vocab[f"<|{code}|>"] for code in LANGUAGES},
        task_to_id={"translate": vocab["<|translate|>"], "transcribe": vocab["<|transcribe|>"]},
        return_timestamps=True)
    model.save_pretrained(out)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer).save_pretrained(out)
    return out
