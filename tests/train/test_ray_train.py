"""``c2kd train --engine ray``: 2 Ray Train CPU workers on a real local Ray cluster train what 2 gloo processes
under torchrun train (same losses and weights after 2 epochs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from ddp_fixtures import random_teachers, student_without_dropout  # noqa: F401
from safetensors.torch import load_file

from c2kd.train.ray_train import ray_worker_env

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO / "src"))
    return env


def _run(args: list[str]) -> None:
    proc = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_dataset, student_without_dropout, random_teachers, ray_cluster):  # noqa: F811
    """The run folders of one C2KD config trained by torchrun (2 gloo processes) and by Ray Train (2 workers)."""
    root = tmp_path_factory.mktemp("ray_train")
    config = {
        "stage": "c2kd", "data": {"path": str(tiny_dataset), "test_split": None},
        "model": {"text": {"name": student_without_dropout, "embed_dim": 32},
                  "video": {"feature_dim": 16, "embed_dim": 32, "dropout": 0.0}},
        "loss": {"alpha": 0.5}, "teachers": {"checkpoints": random_teachers, "cache": True},
        "epochs": 2, "batch_size": 16, "optim": {"lr": 1e-3}, "device": "cpu",
        "progress": False, "tensorboard": False,
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    train = ["-m", "c2kd", "train", "--config", str(root / "config.yaml"), "--threads", "1"]
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *train,
          f"out_dir={root / 'torchrun'}"])
    _run([sys.executable, *train, "--engine", "ray", "--address", ray_cluster, "--workers", "2",
          f"out_dir={root / 'ray'}"])
    return root / "torchrun", root / "ray"


def test_ray_train_gives_the_torchrun_losses_and_weights(runs):
    torchrun, ray = runs
    one, two = load_file(f"{torchrun}/last/model.safetensors"), load_file(f"{ray}/last/model.safetensors")
    assert one.keys() == two.keys()
    for key in one:
        a, b = one[key], two[key]
        if key.endswith("self_attn.in_proj_bias"):  # zero-gradient key bias: Adam amplifies float noise (test_ddp)
            width = a.numel() // 3
            a, b = torch.cat([a[:width], a[2 * width:]]), torch.cat([b[:width], b[2 * width:]])
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-5, msg=key)
    h1, h2 = (json.loads(Path(run, "history.json").read_text()) for run in runs)
    assert len(h1) == len(h2) == 2
    assert [h["train/loss"] for h in h2] == pytest.approx([h["train/loss"] for h in h1], rel=1e-4)
    assert Path(ray, "ray", "train").is_dir()  # Ray Train ran it (its bookkeeping)


def test_worker_env_is_what_torchrun_sets():
    assert ray_worker_env(3, 4, 1) == {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}
