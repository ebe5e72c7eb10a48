"""Tiny random-config seq2seq translation models with a word-level tokenizer, built offline."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path


def make_tiny_seq2seq(
    out: Path,
    corpus: Iterable[str],
    architecture: str = "marian",
    seed: int = 0,
    language_tokens: Sequence[str] = (),
    always_empty: bool = False,
) -> Path:
    """Save a random MarianMT or M2M-100 model + a ``PreTrainedTokenizerFast`` (inputs end with ``</s>``).

    Weights are drawn with std 0.3 so that outputs depend on the input. A Marian model never emits special
    tokens (its output bias forbids them; ``forced_eos_token_id`` ends each output at ``max_new_tokens``), so
    it never outputs an empty translation; with ``always_empty`` the bias favours ``</s>`` instead: it stops
    at once, giving empty translations (a broken model).
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import (
        M2M100Config,
        M2M100ForConditionalGeneration,
        MarianConfig,
        MarianMTModel,
        PreTrainedTokenizerFast,
    )

    specials = ["<pad>", "</s>", "<unk>", *language_tokens]
    words = sorted({w for text in corpus for w in text.split()})
    vocab = {tok: i for i, tok in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        additional_special_tokens=list(language_tokens),
        model_max_length=64,
    )
    torch.manual_seed(seed)
    dims = dict(
        vocab_size=len(vocab),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        init_std=0.3,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=1 if architecture == "m2m100" else 0,
    )
    if architecture == "marian":
        model = MarianMTModel(MarianConfig(**dims, forced_eos_token_id=1))
        with torch.no_grad():
            if always_empty:
                model.final_logits_bias[0, vocab["</s>"]] = 1e4
            else:  # never stop early nor emit tokens that decoding drops: outputs are never empty
                for token in specials:
                    model.final_logits_bias[0, vocab[token]] = -1e4
    elif architecture == "m2m100":
        model = M2M100ForConditionalGeneration(M2M100Config(**dims, bos_token_id=1))
    else:
        raise ValueError(architecture)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
