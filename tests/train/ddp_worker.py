"""One process of the distributed tests: gradients of one global batch, and a short training run.

Run as ``python ddp_worker.py SPEC.json`` with ``WORLD_SIZE``/``RANK``/``MASTER_ADDR``/``MASTER_PORT`` set (or
none of them for the single-process reference). Writes ``rank<R>.pt`` into the spec's ``out`` folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)


def config_for(spec: dict, stage: str, out_dir: str, **extra):
    from c2kd.train.config import load_config

    base = {
        "stage": stage,
        "data": {"path": spec["data"], "test_split": None},
        "model": {"text": {"name": spec["text_model"], "embed_dim": 32},
                  "video": {"feature_dim": 16, "embed_dim": 32, "dropout": 0.0}},
        "epochs": 1, "batch_size": 16, "optim": {"lr": 1e-3}, "out_dir": out_dir,
        "progress": False, "tensorboard": False, "device": "cpu",
    }
    cache = extra.pop("cache", True)
    if stage == "c2kd":
        base["loss"] = {"alpha": 0.5}
        base["teachers"] = {"checkpoints": spec["teachers"], "cache": cache}
    return load_config(None, [f"{k}={v}" for k, v in extra.items()], base=base)


def global_batch_gradients(spec: dict, stage: str, cache: bool = True) -> dict:
    """Loss and student gradients of the spec's global batch (this process's share of it)."""
    from c2kd.train.distributed import detect_env
    from c2kd.train.run import prepare_run

    env = detect_env()
    parts = prepare_run(config_for(spec, stage, str(Path(spec["out"]) / "unused"), cache=cache), env)
    indices = spec["batch"]
    share = len(indices) // env.world
    mine = indices[env.rank * share:(env.rank + 1) * share]
    parts.pairs.set_epoch(0)
    batch = parts.pairs.collate([parts.pairs[i] for i in mine])
    parts.model.train()
    terms = parts.task(batch)
    parts.optimizer.zero_grad()
    terms["loss"].backward()
    grads = {n: p.grad.detach().clone() for n, p in parts.model.named_parameters() if p.grad is not None}
    return {"terms": {k: float(v) for k, v in terms.items()}, "grads": grads}


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    from c2kd.train.distributed import barrier, detect_env
    from c2kd.train.run import train

    env = detect_env()
    result = {
        "translate-train": global_batch_gradients(spec, "translate-train"),
        "c2kd-cached": global_batch_gradients(spec, "c2kd", cache=True),
        "c2kd-live": global_batch_gradients(spec, "c2kd", cache=False),
    }
    run = train(config_for(spec, "c2kd", str(Path(spec["out"]) / "run"), epochs=2))
    result["run"] = str(run)
    torch.save(result, Path(spec["out"]) / f"rank{env.rank}.pt")
    barrier()


if __name__ == "__main__":
    main()
