"""Small randomly initialised Hugging Face text models with a word-level tokenizer built from a corpus.

They are real ``transformers`` models saved in the standard format, loadable by name (a local path) like any
hub model, and trainable: used by tests and examples on machines without a model hub.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from c2kd.io import atomic_path

#: Written beside the model: what made it (the settings), and the mark that lets a later run replace the folder.
RANDOM_TEXT_MARKER = "random_text.json"

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel


def make_random_text_model(out: str | os.PathLike, corpus: Iterable[str], hidden: int = 64, layers: int = 2,
                           heads: int = 2, max_tokens: int = 64, seed: int = 0, architecture: str = "bert",
                           overwrite: bool = False) -> Path:
    """Save a random-config ``architecture`` ("bert" or "xlm-roberta") model + tokenizer to ``out``, with its
    settings in ``random_text.json``. A folder at ``out`` is replaced only when it holds such a model (or is
    empty), unless ``overwrite``."""
    import json

    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel

    words = sorted({w for text in corpus for w in text.lower().split()})
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {tok: i for i, tok in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                        model_max_length=max_tokens)
    torch.manual_seed(seed)
    common: dict[str, Any] = dict(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                                  num_attention_heads=heads, intermediate_size=hidden * 2,
                                  max_position_embeddings=max_tokens + 4, pad_token_id=0)
    model: PreTrainedModel
    if architecture == "bert":
        model = BertModel(BertConfig(**common), add_pooling_layer=False)
    elif architecture == "xlm-roberta":
        model = XLMRobertaModel(XLMRobertaConfig(**common), add_pooling_layer=False)
    else:
        raise ValueError(f"unknown architecture {architecture!r}; use 'bert' or 'xlm-roberta'")
    settings = dict(architecture=architecture, hidden=hidden, layers=layers, heads=heads, max_tokens=max_tokens,
                    seed=seed, vocabulary=len(vocab))
    with atomic_path(out, RANDOM_TEXT_MARKER, overwrite) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / RANDOM_TEXT_MARKER).write_text(json.dumps(settings, indent=2) + "\n")
    return Path(out)
