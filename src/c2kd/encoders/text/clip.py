"""CLIP's own text tower (kind ``clip-text``): ``text_embeds``, the projected end-of-text token, in the image space.

Comparable with ``clip-vit-b32`` frame features of the same CLIP model, with no training; English only for the
OpenAI checkpoints. Trainable; its architecture (config + tokenizer) is saved in a checkpoint's ``text_backbone/``
with its record, its weights in the checkpoint's ``model.safetensors``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from torch import Tensor

from c2kd.encoders.hub import ensure_hub_source, load_error
from c2kd.encoders.text.base import (
    TEXT_LOADERS,
    TEXT_MODEL_TYPES,
    TextBackbone,
    TextPreset,
    quiet_transformers,
    saved_kind,
)
from c2kd.encoders.text.hf import HFTextBackbone
from c2kd.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel

#: the ``model_type``\ s of a CLIP checkpoint (a full ``CLIPModel`` or a CLIP text model)
CLIP_MODEL_TYPES = ("clip", "clip_text_model")


@saved_kind
class CLIPTextBackbone(HFTextBackbone):
    """CLIP's text tower with its projection: ``text_embeds`` (not normalised), in the image-embedding space.

    Tokens are cut at ``max_tokens`` (and at the model's context length, 77 for OpenAI CLIP); the padding token
    is the end-of-text token when the tokenizer names none.

    Shape:
        prepare(texts: B strings) -> {"input_ids": [B, L], "attention_mask": [B, L]}; forward -> [B, projection_dim]
    """

    kind = "clip-text"

    def __init__(self, model: PreTrainedModel, tokenizer, name: str):
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        super().__init__(model, tokenizer, name)
        self.dim = int(model.config.projection_dim)
        self.context_length = int(model.config.max_position_embeddings)

    @staticmethod
    def _text_config(config):
        """The text config of a full CLIP config (with the projection size, which lives on the top level)."""
        if getattr(config, "model_type", None) == "clip":
            text = config.text_config
            text.projection_dim = config.projection_dim
            return text
        return config

    @classmethod
    def from_pretrained(cls, source: str) -> CLIPTextBackbone:
        """Load from a hub id or a local folder of a ``CLIPModel`` or ``CLIPTextModelWithProjection``."""
        from transformers import AutoConfig, AutoTokenizer, CLIPTextModelWithProjection

        what = "CLIP text tower"
        hub = ensure_hub_source(source, what)
        quiet_transformers()
        try:
            config = cls._text_config(AutoConfig.from_pretrained(source, **hub))
            if getattr(config, "model_type", None) != "clip_text_model":
                raise ConfigError(f"{source!r} is a {getattr(config, 'model_type', '?')!r} model, not a CLIP "
                                  "checkpoint: give a CLIPModel or CLIPTextModelWithProjection folder or hub id")
            loaded = CLIPTextModelWithProjection.from_pretrained(source, config=config, output_loading_info=True, **hub)
            model, info = cast("tuple[CLIPTextModelWithProjection, dict]", loaded)  # output_loading_info: a pair
            tokenizer = AutoTokenizer.from_pretrained(source, **hub)
        except OSError as exc:
            raise load_error(source, what, exc) from exc
        missing = [k for k in info.get("missing_keys", []) if "text_projection" in k]
        if missing:
            raise ConfigError(f"{source!r} has no text projection ({missing[0]} is missing): it is a CLIPTextModel "
                              "without projection; give the full CLIP checkpoint instead")
        return cls(model.eval(), tokenizer, name=source)

    @classmethod
    def from_architecture(cls, directory: Path, name: str, record: dict[str, Any] | None = None
                          ) -> CLIPTextBackbone:
        """Rebuild from a checkpoint's ``text_backbone/`` (config + tokenizer; the weights are loaded after)."""
        from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModelWithProjection

        quiet_transformers()
        config = CLIPTextConfig.from_pretrained(directory)
        return cls(CLIPTextModelWithProjection(config), AutoTokenizer.from_pretrained(directory), name=name)

    def prepare(self, texts: Sequence[str], max_tokens: int) -> dict[str, Tensor]:
        return super().prepare(texts, min(max_tokens, self.context_length))

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        out = self.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        return out.text_embeds  # [B, projection_dim]


@TEXT_LOADERS.register("clip-text")
def load_clip_text(source: str, name: str, preset: TextPreset | None) -> TextBackbone:
    """The text tower of a CLIP checkpoint (``clip:SOURCE``, or a CLIP folder as it is)."""
    backbone = CLIPTextBackbone.from_pretrained(source)
    backbone.name = name
    return backbone


for _model_type in CLIP_MODEL_TYPES:  # a CLIP folder given as it is reads as CLIP's text tower
    TEXT_MODEL_TYPES.add(_model_type, "clip-text")
