"""The run's optimizer: Adam on dense parameters, SparseAdam on sparse tables, scheduled and resumed as one."""

import copy

import pytest
import torch
from torch import nn

from c2kd.train.config import OptimConfig
from c2kd.train.optim import DenseAndSparseAdam, build_optimizer, dense_gradients


class Tiny(nn.Module):
    def __init__(self, sparse: bool = True):
        super().__init__()
        self.table = nn.EmbeddingBag(20, 3, mode="mean", padding_idx=0, sparse=sparse)
        self.linear = nn.Linear(3, 2)

    def forward(self, ids):
        return self.linear(self.table(ids))


def _loss(model, step):
    ids = torch.tensor([[1 + step % 5, 7], [3, 0]])
    return model(ids).pow(2).sum()


def _train(model, optimizer, steps, first=0):
    for step in range(first, first + steps):
        optimizer.zero_grad()
        _loss(model, step).backward()
        optimizer.step()


def test_steps_equal_adam_and_sparse_adam_run_separately():
    torch.manual_seed(0)
    ours = Tiny()
    reference = copy.deepcopy(ours)
    optimizer = build_optimizer(ours, OptimConfig(lr=1e-2, sparse_lr=0.1, weight_decay=0.01))
    assert isinstance(optimizer, DenseAndSparseAdam)
    adam = torch.optim.Adam(reference.linear.parameters(), lr=1e-2, weight_decay=0.01)
    sparse_adam = torch.optim.SparseAdam(list(reference.table.parameters()), lr=0.1)
    for step in range(4):
        adam.zero_grad(), sparse_adam.zero_grad()
        _loss(reference, step).backward()
        adam.step(), sparse_adam.step()
    _train(ours, optimizer, 4)
    for (name, a), b in zip(ours.named_parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, msg=name)


def test_a_scheduler_scales_both_learning_rates():
    optimizer = build_optimizer(Tiny(), OptimConfig(lr=1e-3, sparse_lr=1e-2))
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.5)
    optimizer.step(), scheduler.step()
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([5e-4, 5e-3])
    assert isinstance(optimizer, DenseAndSparseAdam) and optimizer.sparse.param_groups[0]["lr"] == pytest.approx(5e-3)


def test_a_resumed_optimizer_continues_as_if_never_stopped():
    torch.manual_seed(1)
    model = Tiny()
    optimizer = build_optimizer(model, OptimConfig(lr=1e-2))
    _train(model, optimizer, 3)
    saved_model, saved_state = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    _train(model, optimizer, 3, first=3)

    resumed = Tiny()
    resumed.load_state_dict(saved_model)
    resumed_optimizer = build_optimizer(resumed, OptimConfig(lr=1e-2))
    resumed_optimizer.load_state_dict(saved_state)
    _train(resumed, resumed_optimizer, 3, first=3)
    for a, b in zip(model.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match=r"model\.text\.words"):
        resumed_optimizer.load_state_dict(torch.optim.Adam(model.parameters()).state_dict())


def test_without_sparse_tables_it_is_plain_adam_and_dense_gradients_turn_them_off():
    assert type(build_optimizer(Tiny(sparse=False), OptimConfig())) is torch.optim.Adam
    model = Tiny()
    dense_gradients(model)
    assert type(build_optimizer(model, OptimConfig())) is torch.optim.Adam
    _loss(model, 0).backward()
    assert model.table.weight.grad is not None and not model.table.weight.grad.is_sparse
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # what sparse gradients cannot go through
