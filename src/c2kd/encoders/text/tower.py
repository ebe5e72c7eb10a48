"""The text tower: its settings, and backbone -> head (+ an optional word bag) -> [B, embed_dim].

The backbone is a pretrained (multilingual) encoder (``c2kd.encoders.text``'s family modules, built by name in
``c2kd.encoders.text.loading``), mean-pooled or pooled as its family does; the head is the paper's LayerNorm +
gated projection, or the aligned head (``c2kd.encoders.text.heads``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from c2kd.encoders.text.base import TextBackbone
from c2kd.encoders.text.heads import AlignedTextHead, GatedTextHead
from c2kd.encoders.words import WordBag, WordBagConfig

#: prefix of the word bag's keys among a text tower's prepared inputs
WORDS_PREFIX = "words."
#: settings of the backbone mix under the names they had before (configs saved then still load; saving writes the
#: new names)
_OLD_SETTING_NAMES = {"fuse": "mix", "fused_start": "mix_start", "fused_ridge": "mix_ridge"}


class TextEncoderConfig(BaseModel):
    """Text tower settings. ``name`` is a preset (``c2kd.encoders.text.presets``), a hub model id or a local path."""

    model_config = ConfigDict(extra="forbid")

    name: str = "labse"
    #: the backbone mix: further backbones read beside ``name`` (always frozen), their vectors concatenated after
    #: its own; e.g. ``[packaged-e5-small]`` beside multilingual USE so that Czech, which USE does not read, is
    #: covered (``fuse`` before; not to be confused with fused checkpoints, ``c2kd model fuse``)
    mix: list[str] = Field(default_factory=list)
    #: ``gated``: LayerNorm + gated projection of the backbone vector (the paper's head, trained from scratch);
    #: ``aligned``: ``name`` already embeds into the frame encoder's space (e.g. CLIP text with CLIP frames), so the
    #: head starts as the identity on its vector and learns a zero-initialised residual from every backbone
    head: Literal["gated", "aligned"] = "gated"
    #: hidden width of the aligned head's residual MLP (0: a linear residual)
    residual_hidden: int = Field(1024, ge=0)
    #: aligned head with ``mix``: start the map from the mixed-in vectors into the frame space by ridge regression
    #: on the training captions ("least-squares", with this ridge), or leave it random ("random")
    mix_start: Literal["least-squares", "random"] = "least-squares"
    mix_ridge: float = Field(1.0, gt=0)
    trainable: bool = True
    embed_dim: int = 512
    max_tokens: int = 35
    eval_max_tokens: int = 40
    #: frozen-backbone mode: with ``trainable=False``, backbone embeddings are cached in this folder
    #: (``c2kd.encoders.text.cache``) and only the LayerNorm + projection are trained
    cache_dir: str | None = None
    #: a trainable bag of words added to the head's output through a zero-initialised projection
    #: (``c2kd.encoders.words``): what the training captions teach, in every language, beyond the backbones
    words: WordBagConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        """Read the backbone mix's settings under their old names (``fuse``, ``fused_start``, ``fused_ridge``)."""
        if not isinstance(data, dict) or not any(old in data for old in _OLD_SETTING_NAMES):
            return data
        data = dict(data)
        for old, new in _OLD_SETTING_NAMES.items():
            if old not in data:
                continue
            value = data.pop(old)
            if new in data and data[new] != value:
                raise ValueError(f"{old} is the old name of {new}: give only {new} (got {new}={data[new]!r} and "
                                 f"{old}={value!r})")
            data[new] = value
        return data


class TextEncoder(nn.Module):
    """Backbone -> head (``gated``: LayerNorm + gated projection; ``aligned``: identity + zero-initialised residual),
    plus, with ``words``, a bag of words through a zero-initialised projection (so it starts silent).

    With ``trainable=False`` the backbone is frozen: no gradients, kept in eval mode, run under ``no_grad``.

    Shape:
        inputs from ``prepare`` -> [B, embed_dim] (not normalised)
    """

    def __init__(self, backbone: TextBackbone, embed_dim: int = 512, trainable: bool = True,
                 head: Literal["gated", "aligned"] = "gated", residual_hidden: int = 1024,
                 words: WordBagConfig | None = None):
        super().__init__()
        self.backbone = backbone
        self.trainable_backbone = trainable and backbone.supports_training
        self.head: nn.Module = (AlignedTextHead(backbone.dim, embed_dim, residual_hidden) if head == "aligned"
                                else GatedTextHead(backbone.dim, embed_dim))
        self.words = WordBag(words) if words is not None else None
        self.words_projection = nn.Linear(words.dim, embed_dim, bias=False) if words is not None else None
        if self.words_projection is not None:
            nn.init.zeros_(self.words_projection.weight)
        if not self.trainable_backbone:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        if not self.trainable_backbone:
            self.backbone.eval()
        return self

    def prepare(self, texts: Sequence[str], max_tokens: int) -> dict[str, Tensor]:
        inputs = self.backbone.prepare(texts, max_tokens)
        if self.words is not None:
            inputs.update({f"{WORDS_PREFIX}{key}": value for key, value in self.words.prepare(texts).items()})
        return inputs

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        backbone_inputs = {k: v for k, v in inputs.items() if not k.startswith(WORDS_PREFIX)}
        if self.trainable_backbone:
            pooled = self.backbone(backbone_inputs)
        else:
            with torch.no_grad():
                pooled = self.backbone(backbone_inputs)
        out = self.head(pooled.float())
        if self.words is not None and self.words_projection is not None:
            out = out + self.words_projection(self.words(inputs[f"{WORDS_PREFIX}ids"]))
        return out
