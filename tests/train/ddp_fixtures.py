"""Fixtures of the distributed tests (a module, not a conftest.py, so the root conftest stays importable)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def random_teachers(tmp_path_factory, tiny_dataset, tiny_text_models) -> list[str]:
    """Two untrained teacher checkpoints (random weights are as good as trained ones for equality tests)."""
    import torch

    from c2kd.checkpoint import save_checkpoint
    from c2kd.model import build_model
    from c2kd.train.config import load_config

    root = tmp_path_factory.mktemp("random_teachers")
    paths = []
    for i, name in enumerate(["teacher_a", "teacher_b"]):
        torch.manual_seed(100 + i)
        cfg = load_config(None, [], base={
            "data": {"path": str(tiny_dataset)}, "out_dir": str(root / name),
            "model": {"text": {"name": str(tiny_text_models[name]), "embed_dim": 32},
                      "video": {"feature_dim": 16, "embed_dim": 32, "dropout": 0.0}}})
        paths.append(str(save_checkpoint(root / name / "best", build_model(cfg.model), cfg)))
    return paths


@pytest.fixture(scope="session")
def student_without_dropout(tmp_path_factory, tiny_text_models) -> str:
    """The tiny student text model with dropout off, so one and two processes draw no random masks."""
    import json
    import shutil

    out = tmp_path_factory.mktemp("student_nodrop") / "student"
    shutil.copytree(tiny_text_models["student"], out)
    config = json.loads((out / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (out / "config.json").write_text(json.dumps(config))
    return str(out)
