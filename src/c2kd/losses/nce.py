"""Noise-contrastive estimation over a text-video similarity matrix."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def nce_loss(scores: Tensor, temperature: float = 0.05, symmetric: bool = True) -> Tensor:
    """InfoNCE with the matching pairs on the diagonal (paper Eq. 1), averaged over the batch.

    With ``symmetric=True`` (the original's choice) the text->video term (rows) and the video->text term
    (columns) are added.

    Shape:
        scores: [B, B] with ``scores[i, j] = f(t_i) . g(v_j)`` -> scalar

    Example:
        >>> s = torch.eye(4)
        >>> bool(nce_loss(s, 0.05) < nce_loss(torch.zeros(4, 4), 0.05))
        True
    """
    if scores.dim() != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"NCE needs a square [B, B] score matrix, got {tuple(scores.shape)}")
    logits = scores.float() / temperature
    target = torch.arange(scores.shape[0], device=scores.device)
    loss = F.cross_entropy(logits, target)
    if symmetric:
        loss = loss + F.cross_entropy(logits.transpose(0, 1), target)
    return loss
