"""configs/siglip/c2kd-siglip2-teacher.yaml on a CPU with tiny random SigLIP models: a SigLIP 2 pair teaches from
the English captions, the student starts as the (multilingual) SigLIP pair, and the run reports that start."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from siglipkit import HIDDEN, make_tiny_siglip

from c2kd.checkpoint import load_checkpoint, save_checkpoint
from c2kd.data.dataset import VideoTextDataset
from c2kd.evaluation.evaluator import RetrievalEvaluator
from c2kd.model import build_model
from c2kd.train.config import TrainConfig, load_config
from c2kd.train.run import train
from c2kd.zeroshot import aligned_model_config

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "siglip" / "c2kd-siglip2-teacher.yaml"


def siglip_dataset(tiny_dataset: Path, teacher_text: Path, out: Path) -> Path:
    """The tiny dataset's captions with frames the SigLIP 2 text tower itself embeds (its English captions' vectors
    plus noise): the SigLIP 2 pair is then a strong English teacher, as the real one is."""
    import pyarrow.parquet as pq

    from c2kd.data.dataset import CAPTIONS_FILE, save_dataset
    from c2kd.data.features import FeatureStoreWriter
    from c2kd.encoders.text.loading import build_text_backbone

    rows = pq.read_table(tiny_dataset / CAPTIONS_FILE).to_pylist()
    backbone = build_text_backbone(f"siglip:{teacher_text}").eval()
    english: dict[str, list[str]] = {}
    for row in rows:
        if row["lang"] == "en":
            english.setdefault(row["video_id"], []).append(row["text"])
    rng = np.random.default_rng(0)
    with torch.no_grad(), FeatureStoreWriter(out / "features", dim=HIDDEN, encoder="tiny-siglip2-frames") as writer:
        for vid, texts in english.items():
            vectors = backbone(backbone.prepare(texts, 64)).numpy()
            writer.add(vid, vectors + rng.normal(scale=0.05, size=vectors.shape).astype(np.float32))
    save_dataset(out, rows, name="siglip-tiny")
    return out


@pytest.fixture(scope="module")
def setting(tmp_path_factory, tiny_dataset):
    root = tmp_path_factory.mktemp("siglip-recipe")
    teacher_text = make_tiny_siglip(root / "siglip2", kind="siglip2", seed=0)
    student_text = make_tiny_siglip(root / "siglip-multilingual", kind="siglip", seed=1)
    data = siglip_dataset(tiny_dataset, teacher_text, root / "data")
    teacher = root / "teacher-siglip2"  # what `c2kd model aligned` writes for the SigLIP 2 pair
    config = aligned_model_config(str(teacher_text), None, HIDDEN, trainable=False)
    save_checkpoint(teacher, build_model(config).eval(),
                    TrainConfig(stage="zero-shot", data={"path": str(data)}, model=config, out_dir=str(teacher)))
    return {"data": data, "teacher": teacher, "student_text": student_text, "root": root}


def recipe(setting, out: Path, *extra: str) -> TrainConfig:
    """The recipe as shipped, with the tiny models' names, sizes and paths."""
    return load_config(RECIPE, [
        f"data.path={setting['data']}", f"model.text.name={setting['student_text']}",
        f"model.text.embed_dim={HIDDEN}", "model.text.residual_hidden=8", f"model.video.feature_dim={HIDDEN}",
        f"model.video.embed_dim={HIDDEN}", f"teachers.checkpoints=[{setting['teacher']}]", "teachers.frames={}",
        "epochs=2", "batch_size=16", "optim.lr=1e-3", f"out_dir={out}", "progress=false", "tensorboard=false",
        *extra])


def test_the_recipe_names_a_siglip2_teacher_and_a_multilingual_siglip_start():
    config = load_config(RECIPE)
    assert config.stage == "c2kd" and config.loss.alpha < 1 and config.teachers.language == "english"
    assert config.model.text.name == "siglip-base-patch16-256-multilingual-text"
    assert config.model.text.head == "aligned" and config.model.video.aligned
    from c2kd.encoders.text.presets import TEXT_PRESETS

    assert TEXT_PRESETS[config.model.text.name].kind == "siglip-text"
    assert config.model.text.embed_dim == config.model.video.feature_dim == 768  # SigLIP base's width


def test_the_recipe_trains_a_c2kd_student_from_the_multilingual_start(setting, tmp_path):
    config = recipe(setting, tmp_path / "run")
    out = train(config)
    val = VideoTextDataset(setting["data"]).split("val")

    # epoch 0 is the untrained multilingual pair, scored independently here
    start = build_model(aligned_model_config(str(setting["student_text"]), None, HIDDEN, residual_hidden=8)).eval()
    state = torch.load(out / "last" / "trainer_state.pt", weights_only=False)["trainer"]
    expected = RetrievalEvaluator(val)(start)["t2v"]["average"]["R@1"]
    assert state["start_metrics"]["t2v/average/R@1"] == pytest.approx(expected)

    # the teacher (the SigLIP 2 pair) reads English far better than the student's start: there is something to learn
    teacher, _ = load_checkpoint(setting["teacher"])
    english = RetrievalEvaluator(val, ["en"])
    assert english(teacher.eval())["t2v"]["en"]["R@1"] > english(start)["t2v"]["en"]["R@1"] + 20

    history = json.loads((out / "history.json").read_text())
    assert len(history) == 2 and all(h["train/distill"] > 0 for h in history)  # the distillation term is trained
    best, best_config = load_checkpoint(out)
    record = json.loads((out / "best" / "text_backbone" / "backbone.json").read_text())
    assert record["kind"] == "siglip-text" and record["length"] == 16
    assert best_config.text.name == str(setting["student_text"])
    best_r1 = RetrievalEvaluator(val)(best.eval())["t2v"]["average"]["R@1"]
    assert best_r1 >= expected  # never handed back worse than its start
