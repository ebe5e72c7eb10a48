"""The video tower: frozen per-frame features -> one embedding per video (paper Section 4.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from c2kd.encoders.gated import GatedProjection


class VideoEncoderConfig(BaseModel):
    """Video tower settings. ``feature_dim`` is the frame encoder's output size (512 for CLIP ViT-B/32)."""

    model_config = ConfigDict(extra="forbid")

    feature_dim: int = 512
    embed_dim: int = 512
    #: transformer layers; 0 (aligned towers only): the tower is the mean of the frames, with nothing to train
    layers: int = Field(2, ge=0)
    heads: int = 4
    mlp_ratio: float = 1.0
    dropout: float = 0.1
    max_frames: int = 30
    #: start as the training-free baseline: the mean of the L2-normalised frames (needs ``feature_dim ==
    #: embed_dim``), plus the transformer's output as a residual whose last layer is zero-initialised
    aligned: bool = False


class VideoEncoder(nn.Module):
    """Per-frame L2-normalisation, gated projection, a transformer over frames with a CLS token, projection.

    With ``aligned=True`` the output is ``mean(normalised frames) + projection(CLS)`` and the projection starts at
    zero, so the untrained tower is the training-free mean pooling of frames from the frame encoder's own space.

    Shape:
        frames: [B, T, F] float, mask: [B, T] bool (True = real frame), T <= max_frames -> [B, E] (not normalised)
    """

    def __init__(self, config: VideoEncoderConfig):
        super().__init__()
        self.config = config
        if config.aligned and config.feature_dim != config.embed_dim:
            raise ValueError(f"an aligned video tower keeps the frame space: feature_dim {config.feature_dim} "
                             f"must equal embed_dim {config.embed_dim}")
        if config.layers == 0:
            if not config.aligned:
                raise ValueError("a video tower with layers=0 only mean-pools frames: set aligned=true, or layers >= 1")
            return
        width = config.embed_dim
        self.input_projection = GatedProjection(config.feature_dim, width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.position = nn.Parameter(torch.zeros(1, config.max_frames + 1, width))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model=width, nhead=config.heads, dim_feedforward=int(width * config.mlp_ratio),
            dropout=config.dropout, activation="gelu", batch_first=True, norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, num_layers=config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.output_projection = nn.Linear(width, config.embed_dim)
        if config.aligned:
            nn.init.zeros_(self.output_projection.weight)
            nn.init.zeros_(self.output_projection.bias)

    def forward(self, frames: Tensor, mask: Tensor) -> Tensor:
        batch, n_frames, dim = frames.shape
        if dim != self.config.feature_dim:
            raise ValueError(
                f"frame features have {dim} dims but the video tower expects {self.config.feature_dim}: "
                "set model.video.feature_dim to the frame encoder's size"
            )
        if n_frames > self.config.max_frames:
            raise ValueError(f"{n_frames} frames > max_frames={self.config.max_frames}; subsample before encoding")
        x = F.normalize(frames.float(), dim=-1)
        if self.config.layers == 0:
            return masked_mean(x, mask)
        x = self.input_projection(x)  # [B, T, W]
        x = torch.cat([self.cls_token.expand(batch, -1, -1), x], dim=1)  # [B, 1+T, W]
        x = x + self.position[:, : n_frames + 1]
        keep = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=mask.device), mask.bool()], dim=1)
        x = self.transformer(x, src_key_padding_mask=~keep)
        out = self.output_projection(self.norm(x[:, 0]))  # CLS output, [B, E]
        if self.config.aligned:
            out = out + masked_mean(F.normalize(frames.float(), dim=-1), mask)
        return out


def masked_mean(frames: Tensor, mask: Tensor) -> Tensor:
    """Mean of the real frames of each video.

    Shape:
        frames: [B, T, F], mask: [B, T] (True = real frame) -> [B, F]
    """
    weights = mask.to(frames.dtype).unsqueeze(-1)  # [B, T, 1]
    return (frames * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
