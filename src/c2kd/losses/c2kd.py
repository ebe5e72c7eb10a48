"""The C2KD distillation objective (paper Section 3.3)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def _soft_cross_entropy(student_logits: Tensor, target_logits: Tensor, dim: int) -> Tensor:
    """KL(softmax(target) || softmax(student)) along ``dim``, averaged over the other dimension."""
    target_log_p = F.log_softmax(target_logits, dim=dim)
    student_log_q = F.log_softmax(student_logits, dim=dim)
    kl = (target_log_p.exp() * (target_log_p - student_log_q)).sum(dim=dim)
    return kl.mean()


def c2kd_loss(student_scores: Tensor, teacher_scores: Tensor, temperature: float = 0.1,
              symmetric: bool = True) -> Tensor:
    """Cross entropy between the teachers' and the student's softmaxed scores (paper Eq. 5-6).

    Computed as the KL divergence ``KL(P' || Q)``, which differs from the cross entropy ``H(P', Q)`` only by the
    teachers' entropy ``H(P')``: a constant for the student, so the gradient is the same, and the loss is exactly
    zero when the student's scores equal the teachers'. Rows give the text->video distributions; with
    ``symmetric=True`` the video->text distributions (columns) are added, as in the original.

    Shape:
        student_scores: [B, B], teacher_scores: [B, B] (pooled, no gradient) -> scalar
    """
    if student_scores.shape != teacher_scores.shape:
        raise ValueError(
            f"student scores {tuple(student_scores.shape)} and teacher scores {tuple(teacher_scores.shape)} differ"
        )
    s = student_scores.float() / temperature
    t = teacher_scores.detach().float() / temperature
    loss = _soft_cross_entropy(s, t, dim=1)
    if symmetric:
        loss = loss + _soft_cross_entropy(s, t, dim=0)
    return loss
