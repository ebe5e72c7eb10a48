"""The text tower: a pretrained (multilingual) backbone, mean-pooled, then LayerNorm + gated projection.

A backbone turns raw strings into one vector per string in two steps, so that the expensive CPU work
(tokenisation) happens once per caption and per encoder, not once per item and per teacher:

- ``prepare(texts)``: strings -> model inputs (cached per string);
- ``forward(inputs)``: model inputs -> [B, H] sentence vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from c2kd.encoders.gated import GatedProjection


class TextEncoderConfig(BaseModel):
    """Text tower settings. ``name`` is a preset (``c2kd.encoders.registry``), a hub model id or a local path."""

    model_config = ConfigDict(extra="forbid")

    name: str = "labse"
    trainable: bool = True
    embed_dim: int = 512
    max_tokens: int = 35
    eval_max_tokens: int = 40
    #: frozen-backbone mode: with ``trainable=False``, backbone embeddings are cached in this folder
    #: (``c2kd.encoders.cache``) and only the LayerNorm + projection are trained
    cache_dir: str | None = None


class TextBackbone(nn.Module):
    """Interface of every text backbone: ``prepare`` strings on the CPU, ``forward`` them to [B, dim]."""

    name: str
    dim: int
    #: whether gradients can flow into the backbone at all (packaged numpy engines cannot be fine-tuned)
    supports_training: bool = True

    def prepare(self, texts: Sequence[str], max_tokens: int) -> dict[str, Tensor]:
        raise NotImplementedError

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def save_architecture(self, directory: Path) -> None:
        """Write what is needed to rebuild this backbone without the hub (weights go in the checkpoint)."""


class HFTextBackbone(TextBackbone):
    """Any Hugging Face encoder, mean-pooled over its *own* attention mask.

    Shape:
        prepare(texts: list[str]) -> {"input_ids": [B, L], "attention_mask": [B, L]}; forward -> [B, H]
    """

    def __init__(self, model: nn.Module, tokenizer, name: str):
        super().__init__()
        if getattr(model, "pooler", None) is not None:
            model.pooler = None  # we mean-pool; an unused pooler would only hold dead weights
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.dim = int(model.config.hidden_size)
        self._token_cache: dict[tuple[str, int], list[int]] = {}
        if tokenizer.pad_token_id is None:
            raise ValueError(f"tokenizer of {name!r} has no padding token; set one before training")

    @classmethod
    def from_pretrained(cls, source: str) -> HFTextBackbone:
        """Load weights and tokenizer from the hub or a local directory."""
        from transformers import AutoModel, AutoTokenizer

        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModel.from_pretrained(source)
        return cls(model, tokenizer, name=source)

    @classmethod
    def from_architecture(cls, directory: Path, name: str) -> HFTextBackbone:
        """Rebuild from a checkpoint's ``text_backbone/`` folder (config + tokenizer; weights loaded after)."""
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        config = AutoConfig.from_pretrained(directory)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        return cls(AutoModel.from_config(config), tokenizer, name=name)

    def save_architecture(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.model.config.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)

    def _token_ids(self, text: str, max_tokens: int) -> list[int]:
        key = (text, max_tokens)
        ids = self._token_cache.get(key)
        if ids is None:
            ids = self.tokenizer(text, truncation=True, max_length=max_tokens)["input_ids"]
            self._token_cache[key] = ids
        return ids

    def prepare(self, texts: Sequence[str], max_tokens: int) -> dict[str, Tensor]:
        missing = [t for t in dict.fromkeys(texts) if (t, max_tokens) not in self._token_cache]
        if missing:  # one batched call to the fast tokenizer for all new strings
            encoded = self.tokenizer(list(missing), truncation=True, max_length=max_tokens)["input_ids"]
            self._token_cache.update({(t, max_tokens): ids for t, ids in zip(missing, encoded)})
        rows = [self._token_cache[(t, max_tokens)] for t in texts]
        length = max((len(r) for r in rows), default=1)
        input_ids = torch.full((len(rows), length), int(self.tokenizer.pad_token_id), dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            attention_mask[i, : len(row)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        mask = inputs["attention_mask"]
        hidden = self.model(input_ids=inputs["input_ids"], attention_mask=mask).last_hidden_state  # [B, L, H]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)  # mean over real tokens


class TextEncoder(nn.Module):
    """Backbone -> LayerNorm -> gated projection to ``embed_dim``.

    With ``trainable=False`` the backbone is frozen: no gradients, kept in eval mode, run under ``no_grad``.

    Shape:
        inputs from ``prepare`` -> [B, embed_dim] (not normalised)
    """

    def __init__(self, backbone: TextBackbone, embed_dim: int = 512, trainable: bool = True):
        super().__init__()
        self.backbone = backbone
        self.trainable_backbone = trainable and backbone.supports_training
        self.norm = nn.LayerNorm(backbone.dim)
        self.projection = GatedProjection(backbone.dim, embed_dim)
        if not self.trainable_backbone:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        if not self.trainable_backbone:
            self.backbone.eval()
        return self

    def prepare(self, texts: Sequence[str], max_tokens: int) -> dict[str, Tensor]:
        return self.backbone.prepare(texts, max_tokens)

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        if self.trainable_backbone:
            pooled = self.backbone(inputs)
        else:
            with torch.no_grad():
                pooled = self.backbone(inputs)
        return self.projection(self.norm(pooled.float()))
