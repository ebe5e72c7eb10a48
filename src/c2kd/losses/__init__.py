"""Training objectives as functions of similarity matrices.

- :func:`nce_loss`: symmetric InfoNCE against the diagonal (paper Eq. 1).
- :func:`c2kd_loss`: cross entropy between teacher and student score distributions (paper Eq. 5-6).
- :func:`smooth_l1_distillation`: the TeachText regression ablations (raw or softmaxed scores).
- :func:`structure_distillation`: the teacher's similarity structure (texts, videos, across), after MCKD.
- :class:`RetrievalObjective`: ``alpha * NCE + (1 - alpha) * distillation`` summed over languages, as a run's
  ``loss`` section (:class:`LossConfig`) says.
"""

from c2kd.losses.c2kd import c2kd_loss
from c2kd.losses.nce import nce_loss
from c2kd.losses.objective import DISTILLATION_OBJECTIVES, LossConfig, RetrievalObjective, distillation_loss
from c2kd.losses.structure import Relations, StructureConfig, structure_distillation
from c2kd.losses.teachtext import smooth_l1_distillation

__all__ = [
    "DISTILLATION_OBJECTIVES",
    "LossConfig",
    "Relations",
    "RetrievalObjective",
    "StructureConfig",
    "c2kd_loss",
    "distillation_loss",
    "nce_loss",
    "smooth_l1_distillation",
    "structure_distillation",
]
