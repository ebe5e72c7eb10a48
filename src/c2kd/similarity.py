"""Text-video similarity matrices and the teacher poolers of C2KD.

Note on the original code: its pooler called ``max`` computes the element-wise *minimum* and the one called
``min`` computes the *maximum*, and its published scripts pass ``min``, so the paper's "Min" results were
obtained with the element-wise maximum. Here every pooler computes what its name says.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

Pooler = Literal["min", "max", "mean"]
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
    raise ValueError(f"unknown pooler {pooler!r}; choose one of {', '.join(POOLERS)}")


def teacher_scores_from_embeddings(text: Tensor, video: Tensor) -> Tensor:
    """Similarity matrices of M teachers at once.

    Shape:
        text: [M, B_t, D], video: [M, B_v, D] -> [M, B_t, B_v]
    """
    return torch.bmm(text, video.transpose(1, 2))
