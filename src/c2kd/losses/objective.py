"""The full training objective: ``alpha * L_NCE + (1 - alpha) * L_distill``, summed over languages.

``L_distill`` is C2KD's (default), a TeachText ablation, or structure distillation after MCKD
(:mod:`c2kd.losses.structure`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from c2kd.languages import ENGLISH
from c2kd.losses.c2kd import c2kd_loss
from c2kd.losses.nce import nce_loss
from c2kd.losses.structure import Relations, StructureConfig, structure_distillation
from c2kd.losses.teachtext import smooth_l1_distillation

DistillationName = Literal["c2kd", "smooth-l1", "smooth-l1-softmax", "structure"]
DISTILLATION_OBJECTIVES: tuple[str, ...] = get_args(DistillationName)


class LossConfig(BaseModel):
    """The ``loss`` section of a run's config: everything :class:`RetrievalObjective` computes with."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    #: balance of NCE and distillation; below 1 the run distills from teachers (the one place that decides it)
    alpha: float = Field(1.0, ge=0.0, le=1.0)
    nce_temperature: float = Field(0.05, gt=0)
    kd_temperature: float = Field(0.1, gt=0)
    distillation: DistillationName = "c2kd"
    symmetric: bool = True
    #: weight of the English NCE term within the sum over languages. 1 is the paper's Eq. 7; the published
    #: runs added English NCE twice (once as the main loss, once more in the loop over languages), i.e. 2
    english_nce_weight: float = Field(1.0, ge=0.0)
    #: ``distillation: structure`` (after MCKD): weights and temperatures of its text, video and cross relations
    structure: StructureConfig = Field(default_factory=StructureConfig)

    @property
    def uses_teachers(self) -> bool:
        """True when the objective distills (``alpha < 1``): the run then needs teachers."""
        return self.alpha < 1.0

    @property
    def uses_structure(self) -> bool:
        """True when the objective distills the teachers' structure (texts x texts, videos x videos too)."""
        return self.uses_teachers and self.distillation == "structure"


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
    if name == "structure":
        raise ValueError("structure distillation reads the texts' and videos' similarities too: use "
                         "RetrievalObjective with student_structure and teacher_structure")
    raise ValueError(f"unknown distillation objective {name!r}; choose one of {DISTILLATION_OBJECTIVES}")


@dataclass(frozen=True)
class RetrievalObjective:
    """Combine NCE and distillation over the languages of a batch, as the ``loss`` section says.

    ``alpha=1`` is translate-train NCE (no teacher needed); ``alpha<1`` needs teacher scores for every
    language present in ``student_scores``.

    Example:
        >>> objective = RetrievalObjective(LossConfig(alpha=0.5, english_nce_weight=2.0))
    """

    config: LossConfig = field(default_factory=LossConfig)

    @property
    def uses_teachers(self) -> bool:
        return self.config.uses_teachers

    def nce_weight(self, language: str) -> float:
        """Weight of ``language``'s NCE term in the sum over languages."""
        return self.config.english_nce_weight if language == ENGLISH else 1.0

    def __call__(self, student_scores: Mapping[str, Tensor],
                 teacher_scores: Mapping[str, Tensor] | None = None,
                 student_structure: Mapping[str, Tensor] | None = None,
                 teacher_structure: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Return named loss terms: ``loss``, ``nce`` and (with teachers) ``distill``, plus ``nce/<lang>``.

        ``nce`` is the weighted sum over languages (:meth:`nce_weight`); ``nce/<lang>`` are unweighted.
        Structure distillation also reads ``*_structure``: ``video`` (videos x videos) and ``text/<lang>`` (the
        captions of ``lang`` x themselves; the teacher's: of the captions it read for ``lang``).

        Shape:
            student_scores: language -> [B, B]; teacher_scores: language -> [B, B] (already pooled);
            *_structure: ``video`` / ``text/<lang>`` -> [B, B]
        """
        if not student_scores:
            raise ValueError("no student scores: the batch has no language")
        cfg = self.config
        terms: dict[str, Tensor] = {}
        nce_total = torch.zeros((), device=next(iter(student_scores.values())).device)
        for lang, scores in student_scores.items():
            term = nce_loss(scores, cfg.nce_temperature, cfg.symmetric)
            terms[f"nce/{lang}"] = term.detach()
            nce_total = nce_total + self.nce_weight(lang) * term
        terms["nce"] = nce_total
        loss = cfg.alpha * nce_total
        if self.uses_teachers:
            if teacher_scores is None:
                raise ValueError(f"alpha={cfg.alpha} < 1 needs teacher scores, but none were given")
            if cfg.uses_structure and (student_structure is None or teacher_structure is None):
                raise ValueError("distillation=structure needs the student's and the teachers' structure")
            kd_total = torch.zeros_like(nce_total)
            for lang, scores in student_scores.items():
                if lang not in teacher_scores:
                    raise ValueError(f"no teacher scores for language {lang!r}")
                if cfg.uses_structure:
                    assert student_structure is not None and teacher_structure is not None
                    term = structure_distillation(
                        Relations(student_structure[f"text/{lang}"], student_structure["video"], scores),
                        Relations(teacher_structure[f"text/{lang}"], teacher_structure["video"],
                                  teacher_scores[lang]),
                        cfg.structure)
                else:
                    term = distillation_loss(cfg.distillation, scores, teacher_scores[lang], cfg.kd_temperature)
                terms[f"distill/{lang}"] = term.detach()
                kd_total = kd_total + term
            terms["distill"] = kd_total
            loss = loss + (1.0 - cfg.alpha) * kd_total
        terms["loss"] = loss
        return terms
