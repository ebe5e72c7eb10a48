"""``c2kd train --engine ray``: the same training, in Ray Train workers (``TorchTrainer``).

Ray Train starts ``workers`` processes (one GPU each with ``use_gpu``), sets ``RANK``/``WORLD_SIZE``/
``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT`` and initialises the torch process group (gloo on CPU, NCCL on
GPU) before the loop runs. The loop makes sure those variables hold what ``ray.train.get_context()`` says, so
:func:`c2kd.train.distributed.detect_env` reads the same world a torchrun launch gives, and
:func:`c2kd.train.distributed.init_distributed` joins nothing (a group exists). Then :func:`c2kd.train.run.train`
runs unchanged: global batch split over the workers, embeddings gathered with gradients, rank 0 writes.

``out_dir`` must be on storage every node sees (``last/`` is the checkpoint and resuming works as with
torchrun); Ray's own bookkeeping goes to ``OUT_DIR/ray/``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from c2kd.errors import ConfigError, require
from c2kd.train.config import TrainConfig


def ray_worker_env(world_rank: int, world_size: int, local_rank: int) -> dict[str, str]:
    """The torch launcher variables of a Ray Train worker, from its train context."""
    return {"RANK": str(world_rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(local_rank)}


def _train_loop(loop_config: dict[str, Any]) -> None:
    """What each Ray Train worker runs: the project's training, in the driver's folder."""
    import ray.train

    from c2kd.train.run import train

    context = ray.train.get_context()
    os.environ.update(ray_worker_env(context.get_world_rank(), context.get_world_size(),
                                     context.get_local_rank()))
    os.chdir(loop_config["cwd"])  # relative paths of the config mean what they mean on the driver
    train(loop_config["config"], resume=loop_config["resume"])


def train_on_ray(config: TrainConfig, resume: bool = True, workers: int = 2, use_gpu: bool = False,
                 address: str | None = None) -> Path:
    """Train ``config`` data-parallel on ``workers`` Ray Train workers; returns the run folder.

    ``address``: the cluster (``auto``, ``HOST:PORT``); None connects to ``$RAY_ADDRESS`` or starts a local one.

    Example:
        >>> train_on_ray(load_config("configs/my-run.yaml", []), workers=8, use_gpu=True)  # doctest: +SKIP
    """
    if workers < 1:
        raise ConfigError(f"--workers {workers}: give at least 1 Ray Train worker")
    if use_gpu and config.device == "cpu":
        raise ConfigError("--use-gpu with device=cpu: drop one of them")
    ray = require("ray", "ray", "c2kd train --engine ray")
    require("ray.train.torch", "ray", "c2kd train --engine ray")
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    out = Path(config.out_dir).resolve()
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address, include_dashboard=False, configure_logging=False)
        except ConnectionError as exc:
            raise ConfigError(f"cannot reach the Ray cluster at {address!r} ({exc}). Start one (`ray start "
                              "--head`) and pass its address with --address, or leave --address out") from exc
    try:
        trainer = TorchTrainer(
            _train_loop,
            train_loop_config={"config": config, "resume": resume, "cwd": os.getcwd()},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu),
            run_config=RunConfig(storage_path=str(out / "ray"), name="train"))
        trainer.fit()
    finally:
        if started:
            ray.shutdown()
    return out
