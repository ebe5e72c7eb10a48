"""Plain helpers shared by test folders (importable as ``c2kd_testkit``: tests/ is on sys.path)."""

from __future__ import annotations

from pathlib import Path


def tiny_config(dataset: Path, text_model: Path, out_dir: Path, **overrides):
    """A TrainConfig for the tiny dataset; keyword overrides use ``__`` for nesting (loss__alpha=0.5)."""
    from c2kd.train.config import load_config

    items = [f"{k.replace('__', '.')}={v}" for k, v in overrides.items()]
    base = {
        "data": {"path": str(dataset)},
        "model": {"text": {"name": str(text_model), "embed_dim": 32},
                  "video": {"feature_dim": 16, "embed_dim": 32, "dropout": 0.0}},
        "epochs": 2, "batch_size": 16, "optim": {"lr": 1e-3}, "out_dir": str(out_dir),
        "progress": False, "tensorboard": False,
    }
    return load_config(None, items, base=base)
