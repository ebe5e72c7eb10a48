"""Structure distillation after MCKD: the teacher's inter-instance similarity structure, distilled into the student.

After the abstract of "Using Multimodal Contrastive Knowledge Distillation for Video-Text Retrieval" (MCKD, IEEE
TCSVT 33(10), 2023): a teacher's "structural inter-instance knowledge" is distilled into a student trained with its
own discrimination (contrastive) loss. **Its exact losses are not public**; this is one reading of the abstract.

The structure of a batch is three similarity matrices of unit embeddings:

- ``text``: among the batch's captions, ``T T^T`` [B, B];
- ``video``: among its videos, ``V V^T`` [B, B];
- ``cross``: across them, ``T V^T`` [B, B] (the scores C2KD distils).

Each relation is matched as distributions: ``KL(softmax(teacher / tau) || softmax(student / tau))`` per row,
averaged over rows. In ``text`` and ``video`` the diagonal (every item's similarity to itself, 1 on both sides)
is left out, so the distributions are over the *other* items of the batch; ``cross`` is matched over rows and
columns, as C2KD does. The loss is ``w_text * L_text + w_video * L_video + w_cross * L_cross``; it is zero when
the student's matrices equal the teacher's.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor


class StructureConfig(BaseModel):
    """Weights and temperatures of the three relations (``loss.structure`` of a run's config)."""

    model_config = ConfigDict(extra="forbid")

    text_weight: float = Field(1.0, ge=0.0)
    video_weight: float = Field(1.0, ge=0.0)
    cross_weight: float = Field(1.0, ge=0.0)
    text_temperature: float = Field(0.1, gt=0)
    video_temperature: float = Field(0.1, gt=0)
    cross_temperature: float = Field(0.1, gt=0)


class Relations(NamedTuple):
    """A batch's similarity structure.

    Shape:
        text: [B, B] (captions x captions), video: [B, B] (videos x videos), cross: [B, B] (captions x videos)
    """

    text: Tensor
    video: Tensor
    cross: Tensor


def relations(text: Tensor, video: Tensor) -> Relations:
    """The structure of unit embeddings.

    Shape:
        text: [B, D], video: [B, D] -> Relations of [B, B] matrices
    """
    return Relations(text @ text.T, video @ video.T, text @ video.T)


def relation_kl(student: Tensor, teacher: Tensor, temperature: float, dim: int = 1,
                drop_diagonal: bool = False) -> Tensor:
    """``KL(softmax(teacher / tau) || softmax(student / tau))`` along ``dim``, averaged over the other dimension;
    ``drop_diagonal``: the distributions leave out the diagonal entries.

    Shape:
        student: [B, B], teacher: [B, B] -> scalar
    """
    if student.shape != teacher.shape:
        raise ValueError(f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)} relations differ")
    dtype = torch.promote_types(student.dtype, torch.float32)  # half precision computed in float32
    s = student.to(dtype) / temperature
    t = teacher.detach().to(dtype) / temperature
    if drop_diagonal:
        b = s.shape[0]
        if b < 2:
            return s.sum() * 0.0  # no other item to relate to
        off = ~torch.eye(b, dtype=torch.bool, device=s.device)
        # [B, B] -> [B, B - 1]: each row (or column) without its diagonal entry
        s, t = (x.transpose(0, 1) if dim == 0 else x for x in (s, t))
        s, t = s[off].view(b, b - 1), t[off].view(b, b - 1)
        dim = 1
    log_p = F.log_softmax(t, dim=dim)
    terms = log_p.exp() * (log_p - F.log_softmax(s, dim=dim))
    return terms.sum(dim=dim).mean()


def structure_terms(student: Relations, teacher: Relations, config: StructureConfig) -> dict[str, Tensor]:
    """The three relation losses, unweighted: ``text``, ``video``, ``cross`` (rows + columns)."""
    return {
        "text": relation_kl(student.text, teacher.text, config.text_temperature, drop_diagonal=True),
        "video": relation_kl(student.video, teacher.video, config.video_temperature, drop_diagonal=True),
        "cross": (relation_kl(student.cross, teacher.cross, config.cross_temperature, dim=1)
                  + relation_kl(student.cross, teacher.cross, config.cross_temperature, dim=0)),
    }


def structure_distillation(student: Relations, teacher: Relations, config: StructureConfig | None = None) -> Tensor:
    """``w_text * L_text + w_video * L_video + w_cross * L_cross`` (see the module's docstring).

    Shape:
        student, teacher: Relations of [B, B] matrices (the teacher's without gradient) -> scalar
    """
    config = config or StructureConfig()
    terms = structure_terms(student, teacher, config)
    return (config.text_weight * terms["text"] + config.video_weight * terms["video"]
            + config.cross_weight * terms["cross"])
