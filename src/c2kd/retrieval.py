"""The retrieval-model interface: what evaluation, the index, search, serving, moments and extraction read of a
model. A trained or aligned :class:`~c2kd.model.DualEncoder` implements it, and so does a weighted set of them
(:class:`~c2kd.late_fusion.LateFusion`); a checkpoint format (:mod:`c2kd.formats`) loads one."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from torch import Tensor

    from c2kd.encoders.frames import FrameEncoderSpec


class RetrievalModel(Protocol):
    """Texts and videos embedded into one space, compared by dot product.

    Shape:
        embed_texts(N strings) -> [N, embed_dim]; embed_videos(N arrays [T_i, feature_dim]) -> [N, embed_dim];
        unit rows.
    """

    training: bool

    @property
    def embed_dim(self) -> int:
        """Size of the shared space (of text and video vectors alike)."""
        ...

    @property
    def feature_dim(self) -> int:
        """Size of the frame features the video side reads."""
        ...

    @property
    def frame_encoder(self) -> list[FrameEncoderSpec]:
        """The frame encoders whose features the video side reads, side by side: one part for a plain model,
        several for a late fusion of models that read different frames (``[]``: not recorded, an old
        checkpoint)."""
        ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...

    def embed_texts(self, texts: Sequence[str], batch_size: int = 256, max_tokens: int | None = None) -> Tensor: ...

    def embed_videos(self, features: Sequence[np.ndarray], batch_size: int = 256) -> Tensor: ...

    def fingerprint(self) -> str:
        """The identity of the weights, as the checkpoint folder it was loaded from or saved to records it."""
        ...

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the model as a checkpoint folder (``c2kd.formats.load_model`` reads it back)."""
        ...
