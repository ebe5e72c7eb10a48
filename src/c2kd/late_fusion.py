"""Late fusion: several models scored as one, ``score(text, video) = sum_m w_m cos_m(text, video) / sum_m w_m``.

Their errors differ, so the weighted sum ranks better than either: the usual way of combining experts in
text-video retrieval. It is computed in one place, :func:`join`: each member's unit vectors are scaled by
``sqrt(w_m / sum w)`` and put side by side, so the dot product of a joined text vector and a joined video vector
is exactly that score, and joined vectors are unit length. :class:`LateFusion` is a
:class:`~c2kd.retrieval.RetrievalModel` made of members (saved as a fused checkpoint by :mod:`c2kd.fused`);
evaluation joins the members' vectors of a split once per candidate weights (:mod:`c2kd.evaluation.fusion`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from c2kd.encoders.frames import FrameEncoderSpec, describe_parts
from c2kd.errors import ConfigError
from c2kd.formats import Checkpointed
from c2kd.retrieval import RetrievalModel


def checked_weights(weights: Sequence[float], members: int) -> list[float]:
    """The weights as floats, refused unless one per member, finite, >= 0 and not all 0."""
    values = [float(w) for w in weights]
    if len(values) != members:
        raise ConfigError(f"{len(values)} fusion weights for {members} members: give one weight each")
    if not all(math.isfinite(w) and w >= 0 for w in values) or not any(values):
        raise ConfigError(f"fusion weights must be finite, >= 0 and not all 0, got {values}")
    return values


def join(parts: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
    """The members' unit vectors of the same items, each scaled by ``sqrt(w_m / sum w)``, side by side.

    Shape:
        parts: M tensors [N, E_m] (unit rows) -> [N, sum E_m] (unit rows); ``join(t, w) @ join(v, w).T`` is
        ``sum_m w_m t_m @ v_m.T / sum_m w_m``
    """
    values = checked_weights(weights, len(parts))
    total = sum(values)
    return torch.cat([part * math.sqrt(w / total) for part, w in zip(parts, values, strict=True)], dim=1)


class LateFusion(Checkpointed, nn.Module):
    """Members with weights, embedding into their joined space (see :func:`join`).

    Member ``m`` reads the columns ``features[m]`` of the frame features (all of them when the members read the
    same frames; its own slice when their features are joined side by side).

    Shape:
        embed_texts(N strings) -> [N, sum E_m]; embed_videos(N arrays [T_i, F]) -> [N, sum E_m]; unit rows.
    """

    checkpoint_format = "c2kd-fused-model"

    def __init__(self, members: Sequence[RetrievalModel], weights: Sequence[float],
                 features: Sequence[tuple[int, int]]):
        super().__init__()
        if not members or len(features) != len(members):
            raise ValueError(f"{len(members)} members and {len(features)} feature slices")
        self.weights = checked_weights(weights, len(members))
        self.members = list(members)
        self.member_modules = nn.ModuleList([m for m in members if isinstance(m, nn.Module)])  # .to(), .eval()
        self.features = [(int(start), int(stop)) for start, stop in features]

    @property
    def embed_dim(self) -> int:
        return sum(m.embed_dim for m in self.members)

    @property
    def feature_dim(self) -> int:
        return max(stop for _, stop in self.features)

    @property
    def frame_encoder(self) -> list[FrameEncoderSpec]:
        """The members' frame encoder when they all read the same frames, else each member's parts in order."""
        if all(cols == (0, self.feature_dim) for cols in self.features):
            return self.members[0].frame_encoder
        return [part for member in self.members for part in member.frame_encoder]

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 256, max_tokens: int | None = None) -> Tensor:
        """Each member embeds ``texts`` with its own tokens limit unless ``max_tokens`` is given."""
        return join([member.embed_texts(texts, batch_size, max_tokens) for member in self.members], self.weights)

    @torch.no_grad()
    def embed_videos(self, features: Sequence[np.ndarray], batch_size: int = 256) -> Tensor:
        for i, frames in enumerate(features):
            if frames.ndim != 2 or frames.shape[1] != self.feature_dim:
                parts = self.frame_encoder
                described = describe_parts(parts) if parts else f"{self.feature_dim}-d features"
                raise ConfigError(f"video {i}: frame features of shape {tuple(frames.shape)}, but this fused model "
                                  f"reads [T, {self.feature_dim}] ({described})")
        return join([member.embed_videos([frames[:, start:stop] for frames in features], batch_size)
                     for member, (start, stop) in zip(self.members, self.features, strict=True)], self.weights)
