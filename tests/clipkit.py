"""Tiny random-config CLIP and sentence-transformers models, written in their real layouts (tests of the CLIP
text towers in tests/encoders and of aligned video search in tests/search)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

#: the shared space of the tiny CLIP models
PROJECTION = 16


def make_tiny_clip_model(out: Path, seed: int = 0) -> Path:
    """A random-config full CLIPModel with a byte-level BPE tokenizer (no merges) and an image processor."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    vocab.update({c: len(vocab) + i for i, c in enumerate(alphabet)})
    vocab.update({c + "</w>": len(vocab) + i for i, c in enumerate(alphabet)})
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 64, "bos_token_id": 0,
                     "eos_token_id": 1, "pad_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=PROJECTION)
    torch.manual_seed(seed)
    CLIPModel(config).eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(out)
    return out


def make_tiny_st_model(out: Path, corpus: list[str], out_features: int = PROJECTION, weights: str = "safetensors",
                       seed: int = 0) -> tuple[Path, torch.Tensor]:
    """A BERT in sentence-transformers layout: mean pooling, then a Dense layer without bias. Returns (folder, W)."""
    from safetensors.torch import save_file

    from c2kd.encoders.random_hf import make_random_text_model

    make_random_text_model(out, corpus, hidden=32, layers=1, heads=2, seed=seed)
    (out / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]))
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128, "do_lower_case": False}))
    (out / "1_Pooling").mkdir()
    (out / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": 32, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}))
    (out / "2_Dense").mkdir()
    (out / "2_Dense" / "config.json").write_text(json.dumps({
        "in_features": 32, "out_features": out_features, "bias": False,
        "activation_function": "torch.nn.modules.linear.Identity"}))
    weight = torch.Generator().manual_seed(seed + 7)
    w = torch.randn(out_features, 32, generator=weight) / 4
    if weights == "safetensors":
        save_file({"linear.weight": w}, str(out / "2_Dense" / "model.safetensors"))
    else:
        torch.save({"linear.weight": w}, out / "2_Dense" / "pytorch_model.bin")
    return out, w
