"""The authors' student architecture (``BaselineTokenFusionPerModModel*``), as far as it embeds texts and videos.

Written from the layout and the forward pass documented with the authors' parity fixture
(``shared/fixtures/authors-model/FACTS.md``), not from their code. In evaluation mode, float32:

- text: a Hugging Face encoder (LaBSE for their student) -> mean over the attention mask ([CLS] and [SEP]
  included, padding excluded) -> LayerNorm (eps 1e-6) -> gated unit ``y * sigmoid(G y)``, ``y = W x`` -> [B, 512];
- video: the first ``max_frames`` (30) frames, each L2-normalised, zero-padded with a mask -> gated unit per frame
  -> LayerNorm (eps 1e-6) -> an empty video gets the masking token in slot 0 -> a CLS token prepended -> pre-norm
  blocks (multi-head attention over unmasked keys, MLP with exact GELU) -> the CLS slot -> gated unit -> [B, 512].

Both outputs are L2-normalised for retrieval (cosine similarity, as the authors score).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from c2kd.encoders.frames import FrameEncoderSpec
from c2kd.encoders.gated import GatedProjection
from c2kd.formats import Checkpointed


class AuthorsArchitecture(BaseModel):
    """What an imported model is: the sizes read from the authors' checkpoint and its stored config."""

    model_config = ConfigDict(extra="forbid")

    #: the authors' class name, e.g. ``BaselineTokenFusionPerModModelLaBSE``
    arch: str
    #: frame feature size (512: CLIP ViT-B/32; 1024: S3D)
    feature_dim: int = Field(512, ge=1)
    #: width of the fusion transformer and of the frame pre-projection
    width: int = Field(512, ge=1)
    depth: int = Field(2, ge=1)
    heads: int = Field(4, ge=1)
    mlp_hidden: int = Field(512, ge=1)
    #: the text encoder's hidden size (768 for LaBSE)
    text_hidden: int = Field(768, ge=1)
    #: size of the shared space
    embed_dim: int = Field(512, ge=1)
    #: the fusion transformer's final LayerNorm is applied (false in every released config)
    apply_norm_layer: bool = False
    #: tokens per caption at evaluation (their ``max_words``) and frames per video (their ``n_video_tokens``)
    max_words: int = Field(40, ge=2)
    max_frames: int = Field(30, ge=1)
    #: the frame encoder whose features the video side reads
    frame_encoder: FrameEncoderSpec | None = None


class FusionAttention(nn.Module):
    """Multi-head self-attention with one ``qkv`` projection; masked keys get no weight.

    Shape:
        x: [B, N, D], key_mask: [B, N] bool (True = attend) -> [B, N, D]
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        batch, n, width = x.shape
        head_dim = width // self.heads
        # [B, N, 3D] -> [3, B, H, N, D/H]: q, k, v in that order, each cut into heads in order
        q, k, v = self.qkv(x).reshape(batch, n, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-2, -1)) * head_dim ** -0.5  # [B, H, N, N]
        scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        out = scores.softmax(dim=-1) @ v  # [B, H, N, D/H]
        return self.proj(out.transpose(1, 2).reshape(batch, n, width))


class FusionMLP(nn.Module):
    """``fc2(GELU(fc1(x)))`` (exact GELU)."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class FusionBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(LN(x))``, then ``x + mlp(LN(x))`` (LayerNorm eps 1e-6)."""

    def __init__(self, width: int, heads: int, hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = FusionAttention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = FusionMLP(width, hidden)

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x), key_mask)
        return x + self.mlp(self.norm2(x))


class FusionTransformer(nn.Module):
    """The video fusion transformer: a CLS token before the frame tokens, pre-norm blocks, the CLS output.

    A video with no frames reads ``masking_token`` in its first slot (that slot then counts as a frame).

    Shape:
        tokens: [B, T, D], mask: [B, T] bool -> [B, D] (the CLS slot)
    """

    def __init__(self, width: int, depth: int, heads: int, hidden: int, apply_norm: bool = False):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.masking_token = nn.Parameter(torch.zeros(width))
        self.blocks = nn.ModuleList(FusionBlock(width, heads, hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.apply_norm = apply_norm

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        empty = ~mask.any(dim=1)  # [B]
        if empty.any():
            tokens = tokens.clone()
            tokens[empty, 0] = self.masking_token.to(tokens.dtype)
            mask = mask.clone()
            mask[empty, 0] = True
        batch = tokens.shape[0]
        x = torch.cat([self.cls_token.expand(batch, -1, -1).to(tokens.dtype), tokens], dim=1)  # [B, T+1, D]
        key_mask = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=mask.device), mask], dim=1)
        for block in self.blocks:
            x = block(x, key_mask)
        if self.apply_norm:
            x = self.norm(x)
        return x[:, 0]


class AuthorsModel(Checkpointed, nn.Module):
    """The authors' student (a :class:`~c2kd.retrieval.RetrievalModel`), weights imported from their checkpoint.

    ``text_encoder`` is a Hugging Face encoder built from its config (weights from the checkpoint) and
    ``tokenizer`` its tokenizer.

    Shape:
        text_vectors(ids [B, L], mask [B, L]) -> [B, E]; video_vectors(frames [B, T, F], mask [B, T]) -> [B, E]
        (raw, as their model returns them); embed_texts / embed_videos -> unit rows.
    """

    checkpoint_format = "c2kd-authors"

    def __init__(self, architecture: AuthorsArchitecture, text_encoder: nn.Module, tokenizer: Any):
        super().__init__()
        a = architecture
        self.architecture = a
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self.text_norm = nn.LayerNorm(a.text_hidden, eps=1e-6)
        self.text_gate = GatedProjection(a.text_hidden, a.embed_dim)
        self.frame_proj = GatedProjection(a.feature_dim, a.width)
        self.frame_norm = nn.LayerNorm(a.width, eps=1e-6)
        self.fusion = FusionTransformer(a.width, a.depth, a.heads, a.mlp_hidden, a.apply_norm_layer)
        self.video_gate = GatedProjection(a.width, a.embed_dim)

    # -- the two towers, as the authors' forward computes them ---------------------------------------------------
    def text_vectors(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Raw text embeddings (not normalised). ``attention_mask`` may keep the authors' middle axis [B, 1, L]."""
        mask = attention_mask.reshape(input_ids.shape)
        hidden = self.text_encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state  # [B, L, H]
        weights = mask.to(hidden.dtype).unsqueeze(-1)  # [B, L, 1]
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1)  # [B, H]
        return self.text_gate(self.text_norm(pooled))

    def video_vectors(self, frames: Tensor, mask: Tensor) -> Tensor:
        """Raw video embeddings (not normalised) of frames prepared as :meth:`prepare_videos` does."""
        tokens = self.frame_norm(self.frame_proj(frames))  # [B, T, D]
        return self.video_gate(self.fusion(tokens, mask.bool()))

    # -- inputs as the authors' evaluation pipeline prepares them -------------------------------------------------
    def prepare_texts(self, texts: Sequence[str], max_tokens: int | None = None) -> dict[str, Tensor]:
        """Token ids and attention mask, cut at ``max_tokens`` (default: the authors' 40 at evaluation)."""
        batch = self.tokenizer(list(texts), padding=True, truncation=True,
                               max_length=max_tokens or self.architecture.max_words, return_tensors="pt")
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def prepare_videos(self, features: Sequence[np.ndarray]) -> tuple[Tensor, Tensor]:
        """The first ``max_frames`` frames of each video, each L2-normalised, zero-padded.

        Shape:
            features: N arrays [T_i, F] -> frames [N, max_frames, F], mask [N, max_frames] bool
        """
        limit = self.architecture.max_frames
        frames = torch.zeros(len(features), limit, self.architecture.feature_dim)
        mask = torch.zeros(len(features), limit, dtype=torch.bool)
        for i, video in enumerate(features):
            kept = torch.as_tensor(np.asarray(video, dtype=np.float32)[:limit]).reshape(-1, frames.shape[-1])
            frames[i, :len(kept)] = kept / kept.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            mask[i, :len(kept)] = True
        return frames, mask

    # -- RetrievalModel ----------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def embed_dim(self) -> int:
        return self.architecture.embed_dim

    @property
    def feature_dim(self) -> int:
        return self.architecture.feature_dim

    @property
    def frame_encoder(self) -> list[FrameEncoderSpec]:
        spec = self.architecture.frame_encoder
        return [spec] if spec is not None else []

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 256, max_tokens: int | None = None) -> Tensor:
        """Unit text vectors.

        Shape:
            texts: N strings -> [N, E] float32 on the CPU
        """
        out = []
        for start in range(0, len(texts), batch_size):
            inputs = {k: v.to(self.device) for k, v in self.prepare_texts(texts[start:start + batch_size],
                                                                          max_tokens).items()}
            out.append(_unit(self.text_vectors(**inputs)).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.embed_dim)

    @torch.no_grad()
    def embed_videos(self, features: Sequence[np.ndarray], batch_size: int = 256) -> Tensor:
        """Unit video vectors of per-frame features ([T_i, F] each; the first ``max_frames`` are read).

        Shape:
            features: N arrays [T_i, F] -> [N, E] float32 on the CPU
        """
        out = []
        for start in range(0, len(features), batch_size):
            frames, mask = self.prepare_videos(features[start:start + batch_size])
            out.append(_unit(self.video_vectors(frames.to(self.device), mask.to(self.device))).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.embed_dim)


def _unit(x: Tensor) -> Tensor:
    """Rows divided by their norm, as the authors normalise before scoring (``a / max(|a|, 1e-8)``)."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-8)
