"""TeachText-style regression distillation, the paper's Figure 4 ablations."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def smooth_l1_distillation(student_scores: Tensor, teacher_scores: Tensor, softmax: bool = False,
                           temperature: float = 0.1, symmetric: bool = True) -> Tensor:
    """Smooth-L1 regression of the student's scores onto the teachers' scores.

    ``softmax=False`` regresses raw cosine scores, as TeachText does; ``softmax=True`` first turns each row
    (and each column, if ``symmetric``) into a distribution at ``temperature`` and regresses those.

    Shape:
        student_scores: [B, B], teacher_scores: [B, B] -> scalar
    """
    s = student_scores.float()
    t = teacher_scores.detach().float()
    if not softmax:
        return F.smooth_l1_loss(s, t)
    loss = F.smooth_l1_loss(F.softmax(s / temperature, dim=1), F.softmax(t / temperature, dim=1))
    if symmetric:
        loss = loss + F.smooth_l1_loss(F.softmax(s / temperature, dim=0), F.softmax(t / temperature, dim=0))
    return loss
