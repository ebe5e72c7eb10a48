"""The full training objective: ``alpha * L_NCE + (1 - alpha) * L_distill``, summed over languages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from c2kd.losses.c2kd import c2kd_loss
from c2kd.losses.nce import nce_loss
from c2kd.losses.teachtext import smooth_l1_distillation

DistillationName = Literal["c2kd", "smooth-l1", "smooth-l1-softmax"]
DISTILLATION_OBJECTIVES: tuple[str, ...] = ("c2kd", "smooth-l1", "smooth-l1-softmax")


def distillation_loss(name: DistillationName, student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """Dispatch to a distillation objective by name.

    Shape:
        student: [B, B], teacher: [B, B] -> scalar
    """
    if name == "c2kd":
        return c2kd_loss(student, teacher, temperature)
    if name == "smooth-l1":
        return smooth_l1_distillation(student, teacher, softmax=False)
    if name == "smooth-l1-softmax":
        return smooth_l1_distillation(student, teacher, softmax=True, temperature=temperature)
    raise ValueError(f"unknown distillation objective {name!r}; choose one of {DISTILLATION_OBJECTIVES}")


@dataclass(frozen=True)
class RetrievalObjective:
    """Combine NCE and distillation over the languages of a batch.

    ``alpha=1`` is translate-train NCE (no teacher needed); ``alpha<1`` needs teacher scores for every
    language present in ``student_scores``.
    """

    alpha: float = 1.0
    nce_temperature: float = 0.05
    kd_temperature: float = 0.1
    distillation: DistillationName = "c2kd"
    symmetric: bool = True

    @property
    def uses_teachers(self) -> bool:
        return self.alpha < 1.0

    def __call__(self, student_scores: Mapping[str, Tensor],
                 teacher_scores: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Return named loss terms: ``loss``, ``nce`` and (with teachers) ``distill``, plus ``nce/<lang>``.

        Shape:
            student_scores: language -> [B, B]; teacher_scores: language -> [B, B] (already pooled)
        """
        if not student_scores:
            raise ValueError("no student scores: the batch has no language")
        terms: dict[str, Tensor] = {}
        nce_total = torch.zeros((), device=next(iter(student_scores.values())).device)
        for lang, scores in student_scores.items():
            term = nce_loss(scores, self.nce_temperature, self.symmetric)
            terms[f"nce/{lang}"] = term.detach()
            nce_total = nce_total + term
        terms["nce"] = nce_total
        loss = self.alpha * nce_total
        if self.uses_teachers:
            if teacher_scores is None:
                raise ValueError(f"alpha={self.alpha} < 1 needs teacher scores, but none were given")
            kd_total = torch.zeros_like(nce_total)
            for lang, scores in student_scores.items():
                if lang not in teacher_scores:
                    raise ValueError(f"no teacher scores for language {lang!r}")
                term = distillation_loss(self.distillation, scores, teacher_scores[lang], self.kd_temperature)
                terms[f"distill/{lang}"] = term.detach()
                kd_total = kd_total + term
            terms["distill"] = kd_total
            loss = loss + (1.0 - self.alpha) * kd_total
        terms["loss"] = loss
        return terms
