"""The weight average against a plain recursion, and its swap in and out of the model."""

import pytest
import torch
from torch import nn

from c2kd.train.averaging import WeightAverage


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    model[1].weight.requires_grad_(False)  # frozen: not averaged
    return model


def test_average_follows_the_warmed_up_recursion():
    model = _model()
    average = WeightAverage(model, decay=0.9)
    expected = model[0].weight.detach().clone().double()
    for n in range(1, 30):
        with torch.no_grad():
            model[0].weight.add_(torch.randn_like(model[0].weight))
        average.update()
        decay = min(0.9, (1 + n) / (10 + n))  # independent of the class's own helper
        expected = decay * expected + (1 - decay) * model[0].weight.detach().double()
    torch.testing.assert_close(average.average["0.weight"].double(), expected, rtol=1e-5, atol=1e-6)
    assert set(average.average) == {"0.weight", "0.bias", "1.bias"}


def test_applied_swaps_the_average_in_and_the_raw_weights_back():
    model = _model()
    average = WeightAverage(model, decay=0.5)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    average.update()
    raw = {k: v.clone() for k, v in model.state_dict().items()}
    with average.applied():
        torch.testing.assert_close(model[0].weight, average.average["0.weight"])
        assert not torch.equal(model[0].weight, raw["0.weight"])
        torch.testing.assert_close(model[1].weight, raw["1.weight"])
    for key, value in model.state_dict().items():
        assert torch.equal(value, raw[key]), key
    with pytest.raises(RuntimeError), average.applied():  # restored after an error too
        raise RuntimeError("evaluation failed")
    assert torch.equal(model[0].weight, raw["0.weight"])


def test_state_round_trip_and_refusals():
    model = _model()
    average = WeightAverage(model, decay=0.99)
    average.update()
    copy = WeightAverage(_model(), decay=0.5)
    copy.load_state_dict(average.state_dict())
    assert copy.updates == 1 and copy.decay == 0.99
    for key in average.average:
        assert torch.equal(copy.average[key], average.average[key])
    with pytest.raises(ValueError, match="other parameters"):
        WeightAverage(nn.Linear(3, 2), 0.9).load_state_dict(average.state_dict())
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        WeightAverage(model, decay=1.0)
