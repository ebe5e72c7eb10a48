"""The optimizer of a run: Adam, and for tables with sparse gradients (the word bag) a lazy Adam on their rows.

``torch.optim.Adam`` refuses sparse gradients, and a dense Adam step over a 256k-row word table costs the whole
table every step when a batch touches a few thousand rows. :class:`DenseAndSparseAdam` steps ``Adam`` on the
dense parameters and ``SparseAdam`` (moments of the touched rows only) on the sparse ones, as one optimizer: one
``param_groups`` list for the learning-rate scheduler and the gradient scaler, one state dict for resuming.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from c2kd.train.config import OptimConfig


def sparse_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Trainable parameters of embedding tables that produce sparse gradients."""
    return [p for m in model.modules() if isinstance(m, nn.Embedding | nn.EmbeddingBag) and m.sparse
            for p in m.parameters(recurse=False) if p.requires_grad]


def dense_gradients(model: nn.Module) -> None:
    """Make every sparse embedding table produce dense gradients: DDP cannot reduce sparse ones on every backend,
    and ``clip_grad_norm_`` cannot take their norm."""
    for module in model.modules():
        if isinstance(module, nn.Embedding | nn.EmbeddingBag):
            module.sparse = False


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    """Adam over the trainable parameters; tables with sparse gradients get ``SparseAdam`` at ``sparse_lr``."""
    sparse = sparse_parameters(model)
    sparse_ids = {id(p) for p in sparse}
    dense = [p for p in model.parameters() if p.requires_grad and id(p) not in sparse_ids]
    if not sparse:
        return torch.optim.Adam(dense, lr=config.lr, weight_decay=config.weight_decay)
    return DenseAndSparseAdam(dense, sparse, lr=config.lr, sparse_lr=config.sparse_lr,
                              weight_decay=config.weight_decay)


class DenseAndSparseAdam(torch.optim.Optimizer):
    """``Adam`` on ``dense`` and ``SparseAdam`` on ``sparse`` parameters, stepped, scheduled and saved together.

    ``param_groups`` are the two inner optimizers' own group dicts (dense first), so a scheduler that scales
    ``lr`` scales both. ``SparseAdam`` has no weight decay: the sparse tables are not decayed.
    """

    def __init__(self, dense: list[nn.Parameter], sparse: list[nn.Parameter], lr: float, sparse_lr: float,
                 weight_decay: float = 0.0):
        groups = ([{"params": dense}] if dense else []) + [{"params": sparse}]
        super().__init__(groups, defaults={})
        self.dense = torch.optim.Adam(dense, lr=lr, weight_decay=weight_decay) if dense else None
        self.sparse = torch.optim.SparseAdam(sparse, lr=sparse_lr)
        self.param_groups = [*(self.dense.param_groups if self.dense else []), *self.sparse.param_groups]

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self.dense is not None:
            self.dense.step()
        self.sparse.step()
        return loss

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        return {"dense": self.dense.state_dict() if self.dense else None, "sparse": self.sparse.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        if set(state_dict) != {"dense", "sparse"}:
            raise ValueError("not a DenseAndSparseAdam state (was the run saved with another model.text.words?)")
        if self.dense is not None:
            self.dense.load_state_dict(state_dict["dense"])
        self.sparse.load_state_dict(state_dict["sparse"])
        self.param_groups = [*(self.dense.param_groups if self.dense else []), *self.sparse.param_groups]
