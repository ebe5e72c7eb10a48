"""Two gloo processes on the CPU compute what one process computes on the same global batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from ddp_fixtures import random_teachers, student_without_dropout  # noqa: F401
from ddp_launch import launch
from safetensors.torch import load_file

from c2kd.errors import ConfigError
from c2kd.train.distributed import DistEnv, detect_env, env_from_slurm, gather_with_grad
from c2kd.train.run import per_process_batch
from c2kd.train.sampler import EpochBatchSampler


@pytest.fixture(scope="module")
def results(tmp_path_factory, tiny_dataset, student_without_dropout, random_teachers):  # noqa: F811 - fixtures
    out = {}
    for world in (1, 2):
        folder = tmp_path_factory.mktemp(f"world{world}")
        spec = {"data": str(tiny_dataset), "text_model": student_without_dropout,
                "teachers": random_teachers, "out": str(folder),
                "batch": [5, 17, 2, 40, 33, 8, 61, 12, 27, 3, 50, 44, 19, 36, 0, 58]}
        (folder / "spec.json").write_text(json.dumps(spec))
        launch(folder / "spec.json", world)
        out[world] = [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(world)]
    return out


@pytest.mark.parametrize("case", ["translate-train", "c2kd-cached", "c2kd-live"])
def test_two_processes_give_the_single_process_loss_and_gradients(results, case):
    single = results[1][0][case]
    for rank_result in results[2]:
        pair = rank_result[case]
        for term, value in single["terms"].items():
            assert pair["terms"][term] == pytest.approx(value, rel=1e-5, abs=1e-6), term
        assert pair["grads"].keys() == single["grads"].keys()
        assert len(single["grads"]) > 10
        for name, grad in single["grads"].items():
            torch.testing.assert_close(pair["grads"][name], grad, rtol=1e-4, atol=1e-6, msg=name)
    if case.startswith("c2kd"):
        assert single["terms"]["distill"] > 0


def test_two_process_training_matches_one_process(results):
    one = load_file(f"{results[1][0]['run']}/last/model.safetensors")
    two = load_file(f"{results[2][0]['run']}/last/model.safetensors")
    assert one.keys() == two.keys()
    for key in one:
        a, b = one[key], two[key]
        if key.endswith("self_attn.in_proj_bias"):
            # The attention key bias has a mathematically zero gradient (softmax ignores a shift shared by all
            # keys); Adam scales its float noise up to full steps, so only its query and value parts are compared.
            width = a.numel() // 3
            a, b = torch.cat([a[:width], a[2 * width:]]), torch.cat([b[:width], b[2 * width:]])
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-5, msg=key)
    h1, h2 = (json.loads(Path(results[w][0]["run"], "history.json").read_text()) for w in (1, 2))
    assert [h["train/loss"] for h in h2] == pytest.approx([h["train/loss"] for h in h1], rel=1e-4)


def test_sampler_shares_of_the_global_batch_cover_it_in_order():
    single = list(EpochBatchSampler(100, 16, seed=3))
    shares = [list(EpochBatchSampler(100, 8, seed=3, num_replicas=2, rank=r)) for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == len(single)
    for k, batch in enumerate(single):
        assert shares[0][k] + shares[1][k] == batch


def test_environment_detection_and_batch_split():
    assert detect_env({}) == DistEnv(1, 0, 0)
    assert detect_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == DistEnv(4, 3, 1)
    slurm = {"SLURM_NTASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1"}
    assert env_from_slurm(slurm) == {"WORLD_SIZE": "8", "RANK": "5", "LOCAL_RANK": "1"}
    assert detect_env(slurm) == DistEnv(8, 5, 1)
    assert env_from_slurm({**slurm, "WORLD_SIZE": "2"}) == {}  # torchrun inside SLURM wins
    with pytest.raises(ConfigError, match="RANK=2 is not within WORLD_SIZE=2"):
        detect_env({"WORLD_SIZE": "2", "RANK": "2"})
    assert per_process_batch(64, DistEnv(2, 0, 0)) == 32
    with pytest.raises(ConfigError, match="divide"):
        per_process_batch(63, DistEnv(2, 0, 0))


def test_gather_is_the_identity_in_one_process():
    x = torch.randn(3, 4, requires_grad=True)
    assert gather_with_grad(x) is x


def test_fewer_items_than_one_batch_is_a_config_error():
    """The quickstart's --max-train below --batch-size ended in a ValueError traceback; a ConfigError is printed
    as one line by the entry point."""
    with pytest.raises(ConfigError, match=r"64 training items are fewer than one batch of 128: lower batch_size"):
        EpochBatchSampler(64, 128)
    assert len(EpochBatchSampler(64, 128, drop_last=False)) == 1
