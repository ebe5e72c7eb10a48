"""SigLIP / SigLIP 2's own text tower (kind ``siglip-text``): its pooled output, in the image space, normalised.

What a user of transformers' SigLIP does, step by step: the model's own tokenizer (SentencePiece for SigLIP, Gemma's
for SigLIP 2) with ``padding="max_length"`` to the fixed length the model was trained with (its
``max_position_embeddings``: 64 for the released models), then ``get_text_features`` (the text transformer's
pooled output: the last position through the text head), L2-normalised. Comparable with the ``siglip`` frame
encoder's features of the same checkpoint with no training (``c2kd model aligned``).

Loaded from a full ``SiglipModel`` / ``Siglip2Model`` checkpoint (hub id or folder; its vision weights are not
read) or a text-only one. Trainable (a student's start, a teacher's text tower); its text config, tokenizer and
padding length are saved in a checkpoint's ``text_backbone/``, its weights in the checkpoint.

``max_tokens`` is not applied: SigLIP reads its fixed length, as it was trained (a caption longer than that is cut
at it, as transformers cuts it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor

from c2kd.encoders.hub import ensure_hub_source, load_error
from c2kd.encoders.text.base import (
    TEXT_LOADERS,
    TEXT_MODEL_TYPES,
    TextBackbone,
    TextPreset,
    quiet_transformers,
    saved_kind,
    write_record,
)
from c2kd.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel

#: ``model_type`` of a full checkpoint -> its text tower's ``model_type`` (SigLIP 2's fixed-resolution checkpoints
#: are ``siglip``; its NaFlex ones ``siglip2``)
TEXT_MODEL_TYPE = {"siglip": "siglip_text_model", "siglip2": "siglip2_text_model"}


def _tokenizer(source: str | Path, **hub: Any):
    """The model's own tokenizer; SigLIP's SentencePiece one needs ``sentencepiece`` (the ``siglip`` extra)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, **hub)
    except ImportError as exc:
        raise MissingDependencyError(f"the tokenizer of {str(source)!r} needs a library that is not installed "
                                     f"({exc}); install it with pip install 'c2kd[siglip]'") from None


def _text_model_class(text_model_type: str):
    from transformers import Siglip2TextModel, SiglipTextModel

    return Siglip2TextModel if text_model_type == "siglip2_text_model" else SiglipTextModel


@saved_kind
class SiglipTextBackbone(TextBackbone):
    """SigLIP's text tower: padded to ``length`` tokens, ``pooler_output`` (= ``get_text_features``), normalised.

    Shape:
        prepare(texts: B strings) -> {"input_ids": [B, length] (+ "attention_mask": [B, length] when the tokenizer
        gives one)}; forward -> [B, dim] unit rows
    """

    kind = "siglip-text"
    #: the cache keys texts without the token limit: it is not applied (see the module docstring)
    uses_max_tokens = False

    def __init__(self, model: PreTrainedModel, tokenizer, name: str, length: int | None = None):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        config = model.config
        #: the fixed number of tokens every text is padded (or cut) to: the model's trained length
        self.length = int(length or config.max_position_embeddings)
        self.dim = int(getattr(config, "projection_size", None) or config.hidden_size)
        self._rows: dict[str, dict[str, list[int]]] = {}

    @classmethod
    def from_pretrained(cls, source: str) -> SiglipTextBackbone:
        """Load from a hub id or a local folder of a SigLIP / SigLIP 2 checkpoint (full or text only)."""
        from transformers import AutoConfig

        what = "SigLIP text tower"
        hub = ensure_hub_source(source, what)
        quiet_transformers()
        try:
            config = AutoConfig.from_pretrained(source, **hub)
            model_type = getattr(config, "model_type", None)
            if model_type in TEXT_MODEL_TYPE:
                config = config.text_config
            elif model_type not in TEXT_MODEL_TYPE.values():
                raise ConfigError(f"{source!r} is a {model_type!r} model, not a SigLIP checkpoint: give a "
                                  "SiglipModel or Siglip2Model folder or hub id (e.g. google/siglip2-base-patch16-256)")
            loaded = _text_model_class(config.model_type).from_pretrained(source, config=config,
                                                                          output_loading_info=True, **hub)
            model, info = cast("tuple[PreTrainedModel, dict]", loaded)  # output_loading_info: a pair
            tokenizer = _tokenizer(source, **hub)
        except OSError as exc:
            raise load_error(source, what, exc) from exc
        missing = sorted(k for k in info.get("missing_keys", ()) if k.startswith("text_model."))
        if missing:
            raise ConfigError(f"{source!r} lacks the text tower's weights ({missing[0]} is missing); give the full "
                              "SigLIP checkpoint")
        return cls(model.eval(), tokenizer, name=source)

    @classmethod
    def from_architecture(cls, directory: Path, name: str, record: dict[str, Any] | None = None
                          ) -> SiglipTextBackbone:
        """Rebuild from a checkpoint's ``text_backbone/`` (text config, tokenizer, the record's length)."""
        from transformers import AutoConfig

        quiet_transformers()
        config = AutoConfig.from_pretrained(directory)
        model = _text_model_class(config.model_type)(config)
        return cls(model.eval(), _tokenizer(directory), name=name,
                   length=(record or {}).get("length"))

    def record(self) -> dict[str, Any]:
        return {**super().record(), "length": self.length}

    def save_architecture(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.model.config.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        write_record(directory, self.record())

    def prepare(self, texts: Sequence[str], max_tokens: int) -> dict[str, Tensor]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._rows]
        if missing:  # one batched call to the tokenizer for all new strings, as transformers' pipeline calls it
            encoded = self.tokenizer(missing, padding="max_length", max_length=self.length, truncation=True)
            keys = [k for k in ("input_ids", "attention_mask") if k in encoded]
            for i, text in enumerate(missing):
                self._rows[text] = {k: list(encoded[k][i]) for k in keys}
        rows = [self._rows[t] for t in texts]
        if not rows:
            return {"input_ids": torch.zeros((0, self.length), dtype=torch.long)}
        return {k: torch.tensor([row[k] for row in rows], dtype=torch.long) for k in rows[0]}

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        out = self.model(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"))
        return F.normalize(out.pooler_output, dim=-1)  # [B, dim]


@TEXT_LOADERS.register("siglip-text")
def load_siglip_text(source: str, name: str, preset: TextPreset | None) -> TextBackbone:
    """The text tower of a SigLIP / SigLIP 2 checkpoint (``siglip:SOURCE``, or a SigLIP folder as it is)."""
    backbone = SiglipTextBackbone.from_pretrained(source)
    backbone.name = name
    return backbone


for _model_type in (*TEXT_MODEL_TYPE, *TEXT_MODEL_TYPE.values()):  # a SigLIP folder given as it is
    TEXT_MODEL_TYPES.add(_model_type, "siglip-text")
