"""Data-parallel training over processes (``torchrun``, ``accelerate launch``, SLURM ``srun``).

The launchers all set ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (SLURM's ``srun`` sets ``SLURM_PROCID`` and
friends, which :func:`env_from_slurm` maps). With ``WORLD_SIZE > 1`` each process:

- reads every ``world``-th batch of one seeded order, each of ``batch_size / world`` items, so one step over all
  processes sees exactly the global batch a single process would;
- gathers the student's text and video embeddings of all processes *with gradients*
  (``torch.distributed.nn.functional.all_gather``), so NCE and C2KD score the global batch (``[G, G]`` matrices);
- builds the teachers' global matrices: with cached teachers it gathers the batch's ``video_index`` /
  ``caption_index`` and looks the global batch up (:class:`c2kd.distill.teachers.GlobalCachedTeacherScores`);
  with live teachers it gathers the teacher embeddings;
- wraps the student's encoders in DistributedDataParallel (gradients averaged; since every process computes
  the same global loss and the gather's backward sums over processes, the average is the single-process
  gradient of the global batch);
- lets only rank 0 write checkpoints, logs and test metrics; rank 0 evaluates and broadcasts the metrics.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from c2kd.errors import ConfigError
from c2kd.model import DualEncoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: ``world`` processes in all, this one is ``rank`` (``local_rank`` on its node)."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_from_slurm(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Map SLURM's task variables to the torch ones (for ``srun python -m ...`` without torchrun).

    Returns the variables to add (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``); empty outside a SLURM step or when
    the torch variables are already set (torchrun inside SLURM sets its own).
    """
    environ = dict(os.environ if environ is None else environ)
    if "WORLD_SIZE" in environ or "SLURM_NTASKS" not in environ or "SLURM_PROCID" not in environ:
        return {}
    return {"WORLD_SIZE": environ["SLURM_NTASKS"], "RANK": environ["SLURM_PROCID"],
            "LOCAL_RANK": environ.get("SLURM_LOCALID", "0")}


def detect_env(environ: dict[str, str] | None = None) -> DistEnv:
    """Read ``WORLD_SIZE`` / ``RANK`` / ``LOCAL_RANK`` (set by torchrun and accelerate; SLURM mapped)."""
    environ = dict(os.environ if environ is None else environ)
    environ.update(env_from_slurm(environ))
    try:
        world = int(environ.get("WORLD_SIZE", "1"))
        rank = int(environ.get("RANK", "0"))
        local = int(environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise ConfigError(f"WORLD_SIZE/RANK/LOCAL_RANK must be integers ({exc}); check the launcher") from exc
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"RANK={rank} is not within WORLD_SIZE={world}; check the launcher")
    return DistEnv(world, rank, local)


def init_distributed(env: DistEnv, device: torch.device, timeout_minutes: float = 60.0) -> None:
    """Join the process group once per process (NCCL on CUDA, gloo on CPU). A no-op for one process.

    The rendezvous is ``MASTER_ADDR``/``MASTER_PORT`` (torchrun/accelerate set them; the SLURM script too).
    """
    if not env.enabled or dist.is_initialized():
        return
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise ConfigError(
            f"WORLD_SIZE={env.world} but {missing} are not set: launch with torchrun / accelerate launch, "
            "or export them (see scripts/slurm/train.sbatch)"
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, rank=env.rank, world_size=env.world,
                            timeout=datetime.timedelta(minutes=timeout_minutes))
    log.info("process %d of %d joined the %s group", env.rank, env.world, backend)


def local_device(env: DistEnv, requested: torch.device) -> torch.device:
    """On CUDA each process uses GPU ``LOCAL_RANK``; on CPU every process uses the CPU."""
    if requested.type == "cuda" and env.enabled:
        return torch.device("cuda", env.local_rank)
    return requested


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` of every process along dim 0, keeping the autograd graph to every part.

    Shape:
        x: [B, ...] -> [world * B, ...] (rank order); ``x`` itself when not distributed
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    import warnings

    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():  # deprecated in favour of a private API in recent torch; still correct
        warnings.simplefilter("ignore", FutureWarning)
        parts = all_gather(x)
    return torch.cat(parts, dim=0)


@torch.no_grad()
def gather_no_grad(x: Tensor) -> Tensor:
    """Like :func:`gather_with_grad` for tensors without gradients (indices, teacher embeddings).

    Shape:
        x: [B, ...] -> [world * B, ...]
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


class StudentForward(nn.Module):
    """One ``forward`` for both towers, so DistributedDataParallel sees every trainable parameter used.

    Shape:
        frames [B, T, F], mask [B, T], text inputs of B*L strings -> (video [B, E], text [B*L, E]), unit rows
    """

    def __init__(self, model: DualEncoder):
        super().__init__()
        self.model = model

    def forward(self, frames: Tensor, mask: Tensor, text_inputs: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        return self.model.encode_video(frames, mask), self.model.encode_text(text_inputs)


def wrap_ddp(model: DualEncoder, device: torch.device) -> nn.Module:
    """DistributedDataParallel around :class:`StudentForward` (the checkpointed model stays ``model``)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(StudentForward(model), device_ids=ids, output_device=device.index if ids else None,
                                   find_unused_parameters=False)


def broadcast_evaluate(evaluate: Callable[[nn.Module], dict[str, float]], env: DistEnv
                       ) -> Callable[[nn.Module], dict[str, float]]:
    """Rank 0 evaluates; the others receive its metrics (so every process picks the same best epoch)."""
    if not env.enabled:
        return evaluate

    def run(model: nn.Module) -> dict[str, float]:
        box: list = [evaluate(model) if env.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    return run


def barrier() -> None:
    """Wait for every process (no-op when not distributed)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
