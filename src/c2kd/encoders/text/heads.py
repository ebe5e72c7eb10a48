"""Text heads over a backbone's vector: the paper's gated head, and the aligned head that starts as the identity."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from c2kd.encoders.gated import GatedProjection


class GatedTextHead(nn.Module):
    """The paper's text head: LayerNorm, then a gated projection to ``embed_dim``.

    Shape:
        x: [B, in_dim] -> [B, embed_dim]
    """

    def __init__(self, in_dim: int, embed_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.projection = GatedProjection(in_dim, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.projection(self.norm(x))


class AlignedTextHead(nn.Module):
    """A head that starts as the identity on an aligned backbone's vector and learns only corrections.

    ``x[:, :embed_dim]`` is the aligned backbone's vector ``a`` (already in the frame encoder's space); the rest,
    ``f``, are the vectors of the mixed-in backbones. The output is

        normalize(a) + g(LN(x)) * (normalize(M f) - normalize(a)) + R(LN(x))

    - ``R``, the residual (an MLP of width ``hidden``, or linear for ``hidden=0``), has a zero-initialised last
      layer;
    - ``M`` maps the mixed-in vectors into the frame space (started by least squares on the training data, see
      :meth:`fit_mix_map`), and the scalar gate ``g`` (linear, zero-initialised) learns, per caption, how much
      to trust it instead of ``a``: e.g. for a language that only a mixed-in backbone reads.

    Untrained, the tower scores exactly what the aligned backbone scores; training can only add what the
    backbones know.

    Shape:
        x: [B, in_dim] with in_dim >= embed_dim -> [B, embed_dim]
    """

    def __init__(self, in_dim: int, embed_dim: int, hidden: int = 1024):
        super().__init__()
        if in_dim < embed_dim:
            raise ValueError(f"an aligned head needs the aligned backbone's {embed_dim} dims, got {in_dim} in all")
        self.embed_dim = embed_dim
        self.norm = nn.LayerNorm(in_dim)
        if hidden:
            self.residual: nn.Module = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, embed_dim))
        else:
            self.residual = nn.Sequential(nn.Linear(in_dim, embed_dim))
        _zero(self.residual[-1])
        mixed = in_dim - embed_dim
        self.mix_map = nn.Linear(mixed, embed_dim, bias=False) if mixed else None
        self.mix_gate = nn.Linear(in_dim, 1) if mixed else None
        if self.mix_gate is not None:
            _zero(self.mix_gate)

    def forward(self, x: Tensor) -> Tensor:
        aligned = F.normalize(x[:, : self.embed_dim], dim=-1)
        normed = self.norm(x)
        out = aligned + self.residual(normed)
        if self.mix_map is not None and self.mix_gate is not None:
            mapped = F.normalize(self.mix_map(x[:, self.embed_dim:]), dim=-1)
            out = out + self.mix_gate(normed) * (mapped - aligned)
        return out

    @torch.no_grad()
    def fit_mix_map(self, mixed: Tensor, targets: Tensor, ridge: float = 1.0) -> None:
        """Start ``M`` as the ridge-regression map from mixed-in vectors to their targets in the frame space.

        Shape:
            mixed: [N, in_dim - embed_dim] (the mixed-in backbones' vectors), targets: [N, embed_dim]
        """
        if self.mix_map is None:
            raise ValueError("this aligned head reads no backbone mix")
        x, y = mixed.double(), targets.double()
        gram = x.T @ x + ridge * torch.eye(x.shape[1], dtype=torch.float64, device=x.device)
        self.mix_map.weight.copy_(torch.linalg.solve(gram, x.T @ y).T.to(self.mix_map.weight.dtype))


def _zero(layer: nn.Module) -> None:
    assert isinstance(layer, nn.Linear)
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
