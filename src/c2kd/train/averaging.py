"""An exponential moving average of a model's trainable weights, validated and saved in place of the raw weights.

After every optimizer step ``average <- average + (1 - d) * (weights - average)`` with ``d = min(decay,
(1 + n) / (10 + n))`` after ``n`` updates (the usual warm-up, so the first steps are not swamped by the start).
:meth:`WeightAverage.applied` swaps the average into the model for validation and saving, and the raw weights
back for training. Frozen parameters (backbones) are not copied.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class WeightAverage:
    """Exponential moving average (``decay`` in (0, 1)) of the trainable parameters of ``model``."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"an average's decay is in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self._params = {name: p for name, p in model.named_parameters() if p.requires_grad}
        self.average = {name: p.detach().clone() for name, p in self._params.items()}
        # the same tensors as two aligned lists, built once: update() runs after every optimizer step
        self._averages, self._weights = list(self.average.values()), [p.detach() for p in self._params.values()]

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the current weights (call after every optimizer step)."""
        self.updates += 1
        torch._foreach_lerp_(self._averages, self._weights, 1.0 - self.current_decay())

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Hold the averaged weights in the model inside the block; the raw weights come back after it."""
        raw = {name: p.detach().clone() for name, p in self._params.items()}
        _copy_into(self._params, self.average)
        try:
            yield
        finally:
            _copy_into(self._params, raw)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "average": self.average}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state["average"]) != set(self._params):
            raise ValueError("the saved weight average is of other parameters (was the run saved with another "
                             "model config?)")
        self.decay, self.updates = float(state["decay"]), int(state["updates"])
        _copy_into(self.average, state["average"])


@torch.no_grad()
def _copy_into(targets: Mapping[str, torch.Tensor], values: Mapping[str, torch.Tensor]) -> None:
    for name, target in targets.items():
        target.copy_(values[name])
