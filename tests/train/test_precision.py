"""Under autocast (bf16 here, on the CPU) the score matrices and every loss term stay float32."""

from __future__ import annotations

import pytest
import torch

from c2kd.data.dataset import TrainingPairs, VideoTextDataset
from c2kd.losses.objective import LossConfig, RetrievalObjective
from c2kd.model import build_model
from c2kd.train.config import load_config
from c2kd.train.tasks import RetrievalTask


def test_scores_and_losses_are_float32_under_bf16_autocast(tiny_dataset, tiny_text_models):
    cfg = load_config(None, [], base={
        "data": {"path": str(tiny_dataset)}, "out_dir": "unused",
        "model": {"text": {"name": str(tiny_text_models["student"]), "embed_dim": 32},
                  "video": {"feature_dim": 16, "embed_dim": 32, "dropout": 0.0}}})
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    split = VideoTextDataset(tiny_dataset).split("train", ["en", "de"], training=True)
    pairs = TrainingPairs(split, ["en", "de"], max_frames=30)
    batch = pairs.collate([pairs[i] for i in range(8)])
    task = RetrievalTask(model, RetrievalObjective(LossConfig(alpha=1.0)), ["en", "de"])
    reference = task(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = task.student_scores(batch)
        terms = task(batch)
    assert all(s.dtype == torch.float32 and s.shape == (8, 8) for s in scores.values())
    assert terms["loss"].dtype == torch.float32
    assert float(terms["loss"].detach()) == pytest.approx(float(reference["loss"].detach()), rel=0.05)
