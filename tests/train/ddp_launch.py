"""Start worker processes with the environment torchrun gives them (MASTER_ADDR/PORT, WORLD_SIZE, RANK).

As torchrun does, the launcher hosts the rendezvous store itself, on a port the OS chose and that it holds until
the workers end (``TORCHELASTIC_USE_AGENT_STORE``: every worker joins it as a client), so no port is bound, let
go and bound again by another process."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def launch(spec_path: Path, world: int, timeout: float = 240.0) -> None:
    """Start ``world`` worker processes with the torchrun environment variables and wait for all of them."""
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "TORCHELASTIC_USE_AGENT_STORE")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    store = None
    if world > 1:
        import torch.distributed as dist

        store = dist.TCPStore("127.0.0.1", 0, world, is_master=True, wait_for_workers=False,
                              timeout=datetime.timedelta(seconds=timeout))
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(store.port), WORLD_SIZE=str(world),
                   TORCHELASTIC_USE_AGENT_STORE="True")
    procs = []
    for rank in range(world):
        rank_env = dict(env, RANK=str(rank), LOCAL_RANK=str(rank)) if world > 1 else env
        procs.append(subprocess.Popen([sys.executable, str(HERE / "ddp_worker.py"), str(spec_path)], env=rank_env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=timeout)
            outputs.append(out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        del store  # the rendezvous ends with the workers
    for rank, (p, out) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"rank {rank} of {world} failed:\n{out[-4000:]}"
