"""The text tower: a pretrained (multilingual) backbone, mean-pooled, then LayerNorm + gated projection.

A backbone turns raw strings into one vector per string in two steps, so that the expensive CPU work
(tokenisation) happens once per caption and per encoder, not once per item and per teacher:

- ``prepare(texts)``: strings -> model inputs (cached per string);
- ``forward(inputs)``: model inputs -> [B, H] sentence vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from c2kd.encoders.gated import GatedProjection
from c2kd.encoders.words import WordBag, WordBagConfig
from c2kd.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel

    from c2kd.encoders.registry import TextPreset

#: prefix of the word bag's keys among a text tower's prepared inputs
WORDS_PREFIX = "words."
#: settings of the backbone mix under the names they had before (configs saved then still load; saving writes the
#: new names)
_OLD_SETTING_NAMES = {"fuse": "mix", "fused_start": "mix_start", "fused_ridge": "mix_ridge"}


class TextEncoderConfig(BaseModel):
    """Text tower settings. ``name`` is a preset (``c2kd.encoders.registry``), a hub model id or a local path."""

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
    #: (``c2kd.encoders.cache``) and only the LayerNorm + projection are trained
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


class TextLoader(Protocol):
    """Loads one kind of text backbone from ``source`` (a hub id, folder or package), named ``name`` (the preset
    name, or the name as given); ``preset`` is the named preset, if the name is one."""

    def __call__(self, source: str, name: str, preset: TextPreset | None) -> TextBackbone: ...


#: how each kind of text backbone is loaded (a :class:`~c2kd.encoders.registry.TextPreset`'s ``kind``): a loader
#: registers with ``@TEXT_LOADERS.register(kind)`` beside the backbone it builds; its module is imported on the
#: first lookup, its heavy library (transformers, a packaged engine) only when it loads
TEXT_LOADERS = Registry[TextLoader](
    "text backbone kind",
    modules=("c2kd.encoders.text", "c2kd.encoders.packaged", "c2kd.encoders.clip_text"),
    hint="the kind of a preset in c2kd.encoders.registry.TEXT_PRESETS",
)


@TEXT_LOADERS.register("hf")
def load_hf(source: str, name: str, preset: TextPreset | None) -> TextBackbone:
    """Any Hugging Face encoder, mean-pooled (named by its source, the hub id or folder)."""
    return HFTextBackbone.from_pretrained(source)


class HFTextBackbone(TextBackbone):
    """Any Hugging Face encoder, mean-pooled over its *own* attention mask.

    Shape:
        prepare(texts: list[str]) -> {"input_ids": [B, L], "attention_mask": [B, L]}; forward -> [B, H]
    """

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


class MixedTextBackbone(TextBackbone):
    """The backbone mix: several backbones read the same strings; their vectors are concatenated, the first's first.

    Only the first part can be fine-tuned; the others are frozen (no gradients, eval mode, ``no_grad``).
    ``prepare`` prefixes each part's inputs with its position, so parts with different tokenizers coexist.

    Shape:
        prepare(texts: B strings) -> {"<i>.<key>": ...}; forward -> [B, sum(part dims)]
    """

    def __init__(self, parts: Sequence[TextBackbone]):
        super().__init__()
        if len(parts) < 2:
            raise ValueError("a backbone mix needs at least two parts")
        self.parts = cast("Sequence[TextBackbone]", nn.ModuleList(parts))  # registered as submodules
        self.name = "+".join(p.name for p in parts)
        self.dims = [int(p.dim) for p in parts]
        self.dim = sum(self.dims)
        self.supports_training = parts[0].supports_training
        for extra in parts[1:]:
            extra.requires_grad_(False)
            extra.eval()

    def train(self, mode: bool = True) -> MixedTextBackbone:
        super().train(mode)
        for extra in self.parts[1:]:
            extra.eval()
        return self

    def prepare(self, texts: Sequence[str], max_tokens: int) -> dict[str, Tensor]:
        return {f"{i}.{key}": value for i, part in enumerate(self.parts)
                for key, value in part.prepare(texts, max_tokens).items()}

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        per_part: list[dict[str, Tensor]] = [{} for _ in self.parts]
        for key, value in inputs.items():
            index, name = key.split(".", 1)
            per_part[int(index)][name] = value
        vectors = []
        for i, (part, own) in enumerate(zip(self.parts, per_part)):
            with torch.set_grad_enabled(i == 0 and torch.is_grad_enabled()):  # mixed-in parts are frozen
                vectors.append(part(own).float())
        return torch.cat(vectors, dim=-1)

    def save_architecture(self, directory: Path) -> None:
        for i, part in enumerate(self.parts):
            part.save_architecture(mix_part_dir(directory, i))


def mix_part_dir(directory: Path, index: int) -> Path:
    """Where part ``index`` of a backbone mix keeps its architecture: the first in ``directory`` itself."""
    return directory if index == 0 else directory / f"mix-{index}"


def saved_mix_part_dir(directory: Path, index: int) -> Path:
    """Where a checkpoint keeps part ``index`` of its backbone mix: :func:`mix_part_dir`, or ``fused-<index>`` in
    checkpoints written before the mix had its name."""
    path = mix_part_dir(directory, index)
    old = directory / f"fused-{index}"
    return old if index and not path.exists() and old.exists() else path


class GatedTextHead(nn.Module):
    """The paper's text head: LayerNorm, then a gated projection to ``embed_dim``.

    Shape:
        x: [B, in_dim] -> [B, embed_dim]
    """

    def __init__(self, in_dim: int, embed_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.projection = GatedProjection(in_dim, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.projection(self.norm(x))


class AlignedTextHead(nn.Module):
    """A head that starts as the identity on an aligned backbone's vector and learns only corrections.

    ``x[:, :embed_dim]`` is the aligned backbone's vector ``a`` (already in the frame encoder's space); the rest,
    ``f``, are the vectors of the mixed-in backbones. The output is

        normalize(a) + g(LN(x)) * (normalize(M f) - normalize(a)) + R(LN(x))

    - ``R``, the residual (an MLP of width ``hidden``, or linear for ``hidden=0``), has a zero-initialised last
      layer;
    - ``M`` maps the mixed-in vectors into the frame space (started by least squares on the training data, see
      :meth:`fit_mix_map`), and the scalar gate ``g`` (linear, zero-initialised) learns, per caption, how much
      to trust it instead of ``a``: e.g. for a language that only a mixed-in backbone reads.

    Untrained, the tower scores exactly what the aligned backbone scores; training can only add what the
    backbones know.

    Shape:
        x: [B, in_dim] with in_dim >= embed_dim -> [B, embed_dim]
    """

    def __init__(self, in_dim: int, embed_dim: int, hidden: int = 1024):
        super().__init__()
        if in_dim < embed_dim:
            raise ValueError(f"an aligned head needs the aligned backbone's {embed_dim} dims, got {in_dim} in all")
        self.embed_dim = embed_dim
        self.norm = nn.LayerNorm(in_dim)
        if hidden:
            self.residual: nn.Module = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, embed_dim))
        else:
            self.residual = nn.Sequential(nn.Linear(in_dim, embed_dim))
        _zero(self.residual[-1])
        mixed = in_dim - embed_dim
        self.mix_map = nn.Linear(mixed, embed_dim, bias=False) if mixed else None
        self.mix_gate = nn.Linear(in_dim, 1) if mixed else None
        if self.mix_gate is not None:
            _zero(self.mix_gate)

    def forward(self, x: Tensor) -> Tensor:
        aligned = F.normalize(x[:, : self.embed_dim], dim=-1)
        normed = self.norm(x)
        out = aligned + self.residual(normed)
        if self.mix_map is not None and self.mix_gate is not None:
            mapped = F.normalize(self.mix_map(x[:, self.embed_dim:]), dim=-1)
            out = out + self.mix_gate(normed) * (mapped - aligned)
        return out

    @torch.no_grad()
    def fit_mix_map(self, mixed: Tensor, targets: Tensor, ridge: float = 1.0) -> None:
        """Start ``M`` as the ridge-regression map from mixed-in vectors to their targets in the frame space.

        Shape:
            mixed: [N, in_dim - embed_dim] (the mixed-in backbones' vectors), targets: [N, embed_dim]
        """
        if self.mix_map is None:
            raise ValueError("this aligned head reads no backbone mix")
        x, y = mixed.double(), targets.double()
        gram = x.T @ x + ridge * torch.eye(x.shape[1], dtype=torch.float64, device=x.device)
        self.mix_map.weight.copy_(torch.linalg.solve(gram, x.T @ y).T.to(self.mix_map.weight.dtype))


def _zero(layer: nn.Module) -> None:
    assert isinstance(layer, nn.Linear)
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


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

