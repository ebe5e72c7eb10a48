"""The dual encoder: text tower f and video tower g, both L2-normalised, compared by dot product."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from c2kd.encoders.frames import FrameEncoderSpec, parts_of
from c2kd.encoders.text.base import TextBackbone
from c2kd.encoders.text.loading import build_text_backbone
from c2kd.encoders.text.mix import MixedTextBackbone
from c2kd.encoders.text.tower import TextEncoder, TextEncoderConfig
from c2kd.encoders.video import VideoEncoder, VideoEncoderConfig
from c2kd.formats import Checkpointed


class ModelConfig(BaseModel):
    """Both towers. ``text.embed_dim`` must equal ``video.embed_dim``."""

    model_config = ConfigDict(extra="forbid")

    text: TextEncoderConfig = Field(default_factory=TextEncoderConfig)
    video: VideoEncoderConfig = Field(default_factory=VideoEncoderConfig)
    #: the frame encoder the video tower reads (recorded from the training data when not given)
    frame_encoder: FrameEncoderSpec | None = None
    #: how a training-free model's text tower is known to share the frames' space: "known" (a pair c2kd knows),
    #: "declared" (its maker said so: `c2kd model aligned --i-know-they-are-aligned`); None: trained
    alignment: Literal["known", "declared"] | None = None


class DualEncoder(Checkpointed, nn.Module):
    """Text and video towers projecting into one normalised space (a :class:`~c2kd.retrieval.RetrievalModel`).

    Shape:
        encode_text(prepared inputs) -> [B, E]; encode_video([B, T, F], [B, T]) -> [B, E]; unit norm rows.
    """

    checkpoint_format = "c2kd-dual-encoder"

    def __init__(self, text: TextEncoder, video: VideoEncoder, config: ModelConfig):
        super().__init__()
        if config.text.embed_dim != config.video.embed_dim:
            raise ValueError(
                f"text embed_dim {config.text.embed_dim} != video embed_dim {config.video.embed_dim}"
            )
        self.text = text
        self.video = video
        self.config = config

    def encode_text(self, inputs: dict[str, Tensor]) -> Tensor:
        return F.normalize(self.text(inputs), dim=-1)

    def encode_video(self, frames: Tensor, mask: Tensor) -> Tensor:
        return F.normalize(self.video(frames, mask), dim=-1)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def embed_dim(self) -> int:
        return self.config.text.embed_dim

    @property
    def feature_dim(self) -> int:
        return self.config.video.feature_dim

    @property
    def frame_encoder(self) -> list[FrameEncoderSpec]:
        return parts_of(self.config.frame_encoder)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 256, max_tokens: int | None = None) -> Tensor:
        """Embed raw strings for retrieval (eval mode is the caller's business).

        Shape:
            texts: N strings -> [N, E] float32 on the CPU
        """
        max_tokens = max_tokens or self.config.text.eval_max_tokens
        out = []
        for start in range(0, len(texts), batch_size):
            inputs = self.text.prepare(texts[start:start + batch_size], max_tokens)
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            out.append(self.encode_text(inputs).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.config.text.embed_dim)

    @torch.no_grad()
    def embed_videos(self, features: Sequence[np.ndarray], batch_size: int = 256) -> Tensor:
        """Embed videos given as per-frame feature arrays ([T_i, F] each), subsampled to ``max_frames``.

        Shape:
            features: N arrays [T_i, F] -> [N, E] float32 on the CPU
        """
        from c2kd.data.batching import pad_frames

        out = []
        for start in range(0, len(features), batch_size):
            frames, mask = pad_frames(features[start:start + batch_size], self.config.video.max_frames)
            out.append(self.encode_video(frames.to(self.device), mask.to(self.device)).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.config.video.embed_dim)


def build_model(config: ModelConfig, backbones: Sequence[TextBackbone] | None = None,
                persist_cache: bool = True) -> DualEncoder:
    """Create a dual encoder; the text backbones (``text.name``, then ``text.mix``) are loaded by name unless given.

    With ``text.cache_dir`` set (frozen-backbone mode) each frozen backbone is wrapped in a ``CachedTextBackbone``;
    ``persist_cache=False`` only reads that cache (texts it lacks are embedded and not stored).
    """
    from c2kd.errors import ConfigError

    names = [config.text.name, *config.text.mix]
    parts = list(backbones) if backbones is not None else [build_text_backbone(n) for n in names]
    if len(parts) != len(names):
        raise ValueError(f"{len(parts)} backbones given for {names}")
    if config.text.cache_dir is not None:
        parts = [_cached(part, config.text, trainable=config.text.trainable and i == 0, persist=persist_cache)
                 for i, part in enumerate(parts)]
    backbone = parts[0] if len(parts) == 1 else MixedTextBackbone(parts)
    if config.text.head == "aligned":
        if parts[0].dim != config.text.embed_dim:
            raise ConfigError(
                f"model.text.head=aligned keeps {config.text.name!r}'s own space, but it gives {parts[0].dim}-d "
                f"vectors and model.text.embed_dim is {config.text.embed_dim}: set both embed_dims to {parts[0].dim}")
        frame_dim = config.frame_encoder.dim if config.frame_encoder else config.video.feature_dim
        if frame_dim != parts[0].dim:
            raise ConfigError(
                f"model.text.head=aligned needs a text backbone that embeds into the frame encoder's space, but "
                f"{config.text.name!r} gives {parts[0].dim}-d vectors and the frames are {frame_dim}-d")
    text = TextEncoder(backbone, embed_dim=config.text.embed_dim, trainable=config.text.trainable,
                       head=config.text.head, residual_hidden=config.text.residual_hidden, words=config.text.words)
    return DualEncoder(text, VideoEncoder(config.video), config)


def _cached(backbone: TextBackbone, text: TextEncoderConfig, trainable: bool, persist: bool = True) -> TextBackbone:
    """Wrap a frozen backbone in the on-disk embedding cache (a fine-tuned one cannot be cached)."""
    from c2kd.encoders.text.cache import CachedTextBackbone
    from c2kd.errors import ConfigError

    if isinstance(backbone, CachedTextBackbone):
        return backbone
    if trainable and backbone.supports_training:
        raise ConfigError(
            f"model.text.cache_dir={text.cache_dir!r} caches a frozen backbone, but model.text.trainable is true "
            f"and {text.name!r} can be fine-tuned: set model.text.trainable=false, or remove model.text.cache_dir"
        )
    assert text.cache_dir is not None
    return CachedTextBackbone(backbone, text.cache_dir, persist=persist)
