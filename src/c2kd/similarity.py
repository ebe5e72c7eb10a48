"""Text-video similarity matrices and the teacher poolers of C2KD.

Note on the original code: its pooler called ``max`` computes the element-wise *minimum* and the one called
``min`` computes the *maximum*, and its published scripts pass ``min``, so the paper's "Min" results were
obtained with the element-wise maximum. Here every pooler computes what its name says.

``zmean`` is not in the paper: teachers whose cosines spread differently (on the Multi30K proxy, e5's spread is a
third of USE's) would otherwise weigh by their spread, not their knowledge; it averages them standardised.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

Pooler = Literal["min", "max", "mean", "zmean"]
POOLERS: tuple[str, ...] = get_args(Pooler)


def similarity_matrix(text: Tensor, video: Tensor) -> Tensor:
    """Cosine similarities between L2-normalised text and video embeddings.

    Shape:
        text: [B_t, D], video: [B_v, D] -> [B_t, B_v] with ``S[i, j] = text[i] . video[j]``.
    """
    return text @ video.transpose(0, 1)


def pool_teacher_scores(scores: Tensor, pooler: Pooler) -> Tensor:
    """Pool M teacher similarity matrices into one, element-wise.

    Shape:
        scores: [M, B_t, B_v] -> [B_t, B_v]
    """
    if scores.dim() != 3:
        raise ValueError(f"teacher scores must be [M, B, B], got shape {tuple(scores.shape)}")
    if pooler == "min":
        return scores.amin(dim=0)
    if pooler == "max":
        return scores.amax(dim=0)
    if pooler == "mean":
        return scores.mean(dim=0)
    if pooler == "zmean":
        return standardised_mean(scores)
    raise ValueError(f"unknown pooler {pooler!r}; choose one of {', '.join(POOLERS)}")


def standardised_mean(scores: Tensor, eps: float = 1e-6) -> Tensor:
    """The mean of M teacher matrices after each is standardised over its entries, given back the teachers' mean
    location and spread: equal to the plain mean when every teacher has the same mean and std, and a teacher's
    own scale (``a * S + b``, ``a > 0``) moves only the result's location and spread, not its shape.

    Shape:
        scores: [M, B_t, B_v] -> [B_t, B_v]
    """
    location = scores.mean(dim=(1, 2), keepdim=True)  # [M, 1, 1]
    spread = scores.std(dim=(1, 2), keepdim=True, unbiased=False).clamp_min(eps)
    return ((scores - location) / spread).mean(dim=0) * spread.mean() + location.mean()


def teacher_scores_from_embeddings(text: Tensor, video: Tensor) -> Tensor:
    """Similarity matrices of M teachers at once.

    Shape:
        text: [M, B_t, D], video: [M, B_v, D] -> [M, B_t, B_v]
    """
    return torch.bmm(text, video.transpose(1, 2))
