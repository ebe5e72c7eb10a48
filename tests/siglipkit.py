"""Tiny random-config SigLIP, SigLIP 2 and SigLIP 2 NaFlex model folders, written offline in their real layouts.

Each folder is what ``save_pretrained`` writes for a hub model of that family, at toy sizes: ``config.json`` (vision
and text configs), the weights, ``preprocessor_config.json`` (the family's own image processor) and a tiny
tokenizer built offline. Frame-encoder tests (tests/features) and text-tower tests read the same folders.

==================  ====================  ==========================  =================================
kind                model class           image processor             tokenizer
==================  ====================  ==========================  =================================
``siglip``          SiglipModel           SiglipImageProcessor        SentencePiece-style unigram
                                          (squash, bicubic,           (lowercased, ``</s>`` appended),
                                          mean/std 0.5)               a PreTrainedTokenizerFast
``siglip2``         SiglipModel           SiglipImageProcessor        Gemma (byte-fallback BPE,
                    (the fixed-resolution (squash, bilinear,          ``<bos>`` first), GemmaTokenizer
                    SigLIP 2 checkpoints  mean/std 0.5)
                    are SiglipModel)
``siglip2-naflex``  Siglip2Model          Siglip2ImageProcessor       Gemma, as above
                                          (aspect ratio kept within
                                          ``max_num_patches``)
==================  ====================  ==========================  =================================

Example:
    >>> folder = make_tiny_siglip(tmp_path / "siglip2", kind="siglip2")  # doctest: +SKIP
    >>> SiglipModel.from_pretrained(folder)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

KINDS = ("siglip", "siglip2", "siglip2-naflex")

#: the sizes of the tiny models: images of 32x32 pixels in 8x8 patches (fixed resolution), a 16-d shared space
IMAGE_SIZE = 32
PATCH_SIZE = 8
HIDDEN = 16
#: the text length the tiny models pad to (the real ones: 64)
TEXT_LENGTH = 16
#: the NaFlex patch budget of the tiny model (the real ones: 256)
MAX_PATCHES = 16

#: words the SigLIP tokenizer is trained on (any other text falls back to pieces and characters)
CORPUS = ["a man is talking about a car", "a woman cooks pasta in a kitchen", "people dance on a stage",
          "ein mann spricht über ein auto", "une femme cuisine des pâtes", "два человека играют в футбол",
          "một người đàn ông đang nói", "一个男人在说话", "cartoon dog running on the grass"]


def _tower(**extra: Any) -> dict[str, Any]:
    return {"hidden_size": HIDDEN, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            **extra}


def make_tiny_siglip(out: Path, kind: str = "siglip2", seed: int = 0, image_size: int = IMAGE_SIZE,
                     patch_size: int = PATCH_SIZE, max_num_patches: int = MAX_PATCHES) -> Path:
    """Write a full tiny model folder of ``kind`` (one of :data:`KINDS`) to ``out``; returns ``out``.

    ``image_size`` and ``patch_size`` set the vision tower (NaFlex: ``max_num_patches`` is the processor's budget
    and the number of position embeddings the model interpolates from).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _unigram_tokenizer() if kind == "siglip" else _gemma_tokenizer()
    vocab = len(tokenizer)
    ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
           "bos_token_id": tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id}
    text = _tower(vocab_size=vocab, max_position_embeddings=TEXT_LENGTH, **ids)
    torch.manual_seed(seed)
    if kind == "siglip2-naflex":
        from transformers import Siglip2Config, Siglip2ImageProcessor, Siglip2Model

        vision = _tower(patch_size=patch_size, num_patches=max_num_patches)
        Siglip2Model(Siglip2Config(text_config=text, vision_config=vision)).eval().save_pretrained(out)
        Siglip2ImageProcessor(patch_size=patch_size, max_num_patches=max_num_patches).save_pretrained(out)
    else:
        from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

        vision = _tower(image_size=image_size, patch_size=patch_size)
        SiglipModel(SiglipConfig(text_config=text, vision_config=vision)).eval().save_pretrained(out)
        # SigLIP resizes with bicubic, SigLIP 2 with bilinear; both squash to the square without cropping
        resample = 3 if kind == "siglip" else 2
        SiglipImageProcessor(size={"height": image_size, "width": image_size}, resample=resample,
                             image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5]).save_pretrained(out)
    tokenizer.model_max_length = TEXT_LENGTH
    tokenizer.save_pretrained(out)
    (out / "tiny-model.json").write_text(json.dumps({"kind": kind, "seed": seed, "written_by": "tests/siglipkit.py"}))
    return out


def _gemma_tokenizer():
    """A Gemma tokenizer (byte-fallback BPE over "▁"-joined words, ``<bos>`` first) with a tiny vocabulary: the
    special tokens, the 256 byte pieces, and the characters and a few words of :data:`CORPUS`."""
    from transformers import GemmaTokenizer

    vocab: dict[str, int] = {}
    for token in ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"] + [f"<0x{b:02X}>" for b in range(256)]:
        vocab[token] = len(vocab)
    chars = sorted({c for line in CORPUS for c in line.replace(" ", "▁")} | set("abcdefghijklmnopqrstuvwxyz▁"))
    for c in chars:
        vocab.setdefault(c, len(vocab))
    merges = [("▁", "a"), ("▁", "m"), ("▁a", "n"), ("▁m", "a"), ("▁ma", "n")]
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    return GemmaTokenizer(vocab=vocab, merges=merges)


def _unigram_tokenizer():
    """A SentencePiece-style unigram tokenizer trained offline on :data:`CORPUS`: lowercased, words marked with
    "▁", ``</s>`` appended (SigLIP's convention; ``</s>`` also pads), saved as a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>"]
    backend = Tokenizer(models.Unigram())
    backend.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=200, special_tokens=specials, unk_token="<unk>",
                                      initial_alphabet=list("abcdefghijklmnopqrstuvwxyz"), shrinking_factor=0.75)
    backend.train_from_iterator(CORPUS, trainer=trainer)
    eos = backend.token_to_id("</s>")
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                           special_tokens=[("</s>", eos)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", pad_token="</s>", unk_token="<unk>")
