"""Gated projection: a linear layer followed by a context gate, ``y = Wx * sigmoid(G Wx)``."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class GatedProjection(nn.Module):
    """Linear projection followed by context gating (element-wise ``y * sigmoid(G y)``).

    Shape:
        x: [..., in_dim] -> [..., out_dim]
    """

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        self.gate = nn.Linear(out_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        y = self.linear(x)
        return y * torch.sigmoid(self.gate(y))
