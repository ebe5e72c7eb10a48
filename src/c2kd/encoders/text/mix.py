"""The backbone mix: several backbones read the same strings, their vectors side by side (the first's first).

A mix is not saved as a kind of its own: the config names its parts (``text.name`` then ``text.mix``), and each part
saves its architecture and record in its own folder (:func:`mix_part_dir`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import cast

import torch
from torch import Tensor, nn

from c2kd.encoders.text.base import TextBackbone


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
