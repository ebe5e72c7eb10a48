"""Any Hugging Face encoder as a text backbone, mean-pooled over its own attention mask (kind ``hf``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from c2kd.encoders.text.base import TEXT_LOADERS, TextBackbone, TextPreset, saved_kind, write_record

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel


@saved_kind
class HFTextBackbone(TextBackbone):
    """Any Hugging Face encoder, mean-pooled over its *own* attention mask.

    Shape:
        prepare(texts: list[str]) -> {"input_ids": [B, L], "attention_mask": [B, L]}; forward -> [B, H]
    """

    kind = "hf"

    def __init__(self, model: PreTrainedModel, tokenizer, name: str):
        super().__init__()
        if getattr(model, "pooler", None) is not None:
            model.pooler = None  # type: ignore[assignment]  # we mean-pool; an unused pooler holds dead weights
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

        from c2kd.encoders.text.base import quiet_transformers

        quiet_transformers()
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModel.from_pretrained(source)
        return cls(model, tokenizer, name=source)

    @classmethod
    def from_architecture(cls, directory: Path, name: str, record: dict[str, Any] | None = None) -> HFTextBackbone:
        """Rebuild from a checkpoint's ``text_backbone/`` folder (config + tokenizer; weights loaded after)."""
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        config = AutoConfig.from_pretrained(directory)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        return cls(AutoModel.from_config(config), tokenizer, name=name)

    def save_files(self, directory: Path) -> None:
        """The model's config and tokenizer (what :meth:`from_architecture` reads), without a record."""
        directory.mkdir(parents=True, exist_ok=True)
        self.model.config.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)

    def save_architecture(self, directory: Path) -> None:
        self.save_files(directory)
        write_record(directory, self.record())

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


@TEXT_LOADERS.register("hf")
def load_hf(source: str, name: str, preset: TextPreset | None) -> TextBackbone:
    """Any Hugging Face encoder, mean-pooled (named by its source, the hub id or folder)."""
    return HFTextBackbone.from_pretrained(source)
