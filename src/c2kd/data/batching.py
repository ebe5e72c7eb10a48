"""Frame sampling and padding shared by training, evaluation and search."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def sample_frame_indices(n_frames: int, max_frames: int) -> np.ndarray:
    """Indices of at most ``max_frames`` frames spread uniformly over ``n_frames`` (all of them if fewer).

    Deterministic, so video embeddings of frozen teachers can be cached.
    """
    if n_frames <= max_frames:
        return np.arange(n_frames)
    return np.linspace(0, n_frames - 1, max_frames).round().astype(np.int64)


def pad_frames(features: Sequence[np.ndarray], max_frames: int) -> tuple[Tensor, Tensor]:
    """Subsample and pad a list of per-video features into a batch.

    Shape:
        features: B arrays [T_i, F] -> frames [B, T, F] float32, mask [B, T] bool; T = min(max T_i, max_frames)
    """
    picked = [np.asarray(f)[sample_frame_indices(len(f), max_frames)] for f in features]
    length = max((len(f) for f in picked), default=1)
    dim = picked[0].shape[1] if picked else 1
    frames = torch.zeros(len(picked), max(length, 1), dim, dtype=torch.float32)
    mask = torch.zeros(len(picked), max(length, 1), dtype=torch.bool)
    for i, f in enumerate(picked):
        frames[i, : len(f)] = torch.from_numpy(np.asarray(f, dtype=np.float32))
        mask[i, : len(f)] = True
    return frames, mask
