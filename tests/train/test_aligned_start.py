"""Aligned start: an untrained aligned model scores exactly the training-free cosine, and training keeps the start
unless an epoch validates better."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from c2kd.checkpoint import load_checkpoint, save_checkpoint
from c2kd.data.dataset import VideoTextDataset
from c2kd.evaluation.evaluator import RetrievalEvaluator
from c2kd.model import ModelConfig, build_model
from c2kd.train.config import TrainConfig
from c2kd.train.run import train
from c2kd_testkit import tiny_config


@pytest.fixture(scope="module")
def aligned_text(tmp_path_factory, tiny_dataset):
    """A 16-d random text model: 'aligned' with the tiny dataset's 16-d frames by construction of the test."""
    import pyarrow.parquet as pq

    from c2kd.encoders.random_hf import make_random_text_model

    texts = pq.read_table(tiny_dataset / "captions.parquet", columns=["text"]).column("text").to_pylist()
    return make_random_text_model(tmp_path_factory.mktemp("aligned") / "text16", texts, hidden=16, seed=5)


def aligned_config(text_name, mix=(), words=None) -> ModelConfig:
    return ModelConfig.model_validate({
        "text": {"name": str(text_name), "mix": [str(m) for m in mix], "head": "aligned", "embed_dim": 16,
                 "residual_hidden": 8, "words": words},
        "video": {"feature_dim": 16, "embed_dim": 16, "aligned": True, "dropout": 0.0}})


def reference_scores(text_model_dir, texts, videos) -> np.ndarray:
    """Cosine between mean-pooled text vectors and the mean of L2-normalised frames, computed independently."""
    tokenizer = AutoTokenizer.from_pretrained(text_model_dir)
    model = AutoModel.from_pretrained(text_model_dir).eval()
    rows = []
    with torch.no_grad():
        for text in texts:
            hidden = model(**tokenizer(text, return_tensors="pt")).last_hidden_state[0].numpy()
            rows.append(hidden.mean(axis=0))
    t = np.stack(rows)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    v = np.stack([(f / np.linalg.norm(f, axis=1, keepdims=True)).mean(axis=0) for f in videos])
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return t @ v.T


@pytest.mark.parametrize("words", [None, {"buckets": 64, "dim": 8}], ids=["backbones", "with-word-bag"])
def test_untrained_aligned_model_scores_the_training_free_cosine(aligned_text, tiny_text_models, words):
    torch.manual_seed(0)
    model = build_model(aligned_config(aligned_text, mix=[tiny_text_models["teacher_a"]], words=words)).eval()
    texts = ["a dog runs", "the red car stops", "cat"]
    rng = np.random.default_rng(0)
    videos = [rng.normal(size=(n, 16)).astype(np.float32) * rng.uniform(0.5, 3) for n in (1, 4, 7, 30)]
    ours = (model.embed_texts(texts) @ model.embed_videos(videos).T).numpy()
    np.testing.assert_allclose(ours, reference_scores(aligned_text, texts, videos), atol=1e-5)


def test_aligned_heads_learn_a_residual_and_mixed_in_backbones_stay_frozen(aligned_text, tiny_text_models):
    torch.manual_seed(0)
    model = build_model(aligned_config(aligned_text, mix=[tiny_text_models["teacher_a"]]))
    mixed_in = model.text.backbone.parts[1]
    assert all(not p.requires_grad for p in mixed_in.parameters())
    inputs = model.text.prepare(["a dog runs", "the cat"], 35)
    frames, mask = torch.randn(2, 3, 16), torch.ones(2, 3, dtype=torch.bool)
    scores = model.encode_text(inputs) @ model.encode_video(frames, mask).T
    (-scores.diagonal().sum()).backward()
    last = model.text.head.residual[-1]
    assert last.weight.grad is not None and last.weight.grad.abs().sum() > 0  # the residual learns
    assert model.video.output_projection.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in mixed_in.parameters())


def test_aligned_model_with_a_backbone_mix_round_trips_through_a_checkpoint(aligned_text, tiny_text_models,
                                                                             tiny_dataset, tmp_path):
    torch.manual_seed(1)
    model = build_model(aligned_config(aligned_text, mix=[tiny_text_models["teacher_b"]],
                                       words={"buckets": 64, "dim": 8}))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))  # move off the start so the residual weights matter
    config = TrainConfig(data={"path": str(tiny_dataset)}, model=model.config)
    save_checkpoint(tmp_path / "ckpt", model, config)
    loaded, saved = load_checkpoint(tmp_path / "ckpt")
    assert saved == model.config
    texts = ["a dog runs", "zwei katzen"]
    assert torch.allclose(model.eval().embed_texts(texts), loaded.eval().embed_texts(texts), atol=1e-6)
    without_words = build_model(aligned_config(aligned_text, mix=[tiny_text_models["teacher_b"]]))
    without_words.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("text.words")})
    assert not torch.allclose(model.embed_texts(texts), without_words.eval().embed_texts(texts), atol=1e-3)


def as_saved_before_the_mix_was_named(new, old):
    """Copy the checkpoint ``new`` to ``old`` as versions before the backbone mix had its name wrote it: weights
    ``text.head.fused_map`` / ``fused_gate``, the mixed-in backbones' folders ``fused-N``, ``text.fuse`` /
    ``fused_start`` / ``fused_ridge`` in config.yaml."""
    import shutil

    import yaml
    from safetensors.torch import load_file

    from c2kd.checkpoint import BACKBONE_DIR, CONFIG_FILE, FORMAT, WEIGHTS_FILE, save_weights

    shutil.copytree(new, old)
    state = load_file(str(old / WEIGHTS_FILE))
    renamed = {k.replace(".mix_map.", ".fused_map.").replace(".mix_gate.", ".fused_gate."): v for k, v in state.items()}
    assert renamed.keys() != state.keys()
    save_weights(old, renamed, metadata={"format": FORMAT})
    (old / BACKBONE_DIR / "mix-1").rename(old / BACKBONE_DIR / "fused-1")
    config = yaml.safe_load((old / CONFIG_FILE).read_text())
    text = config["model"]["text"]
    for was, now in (("fuse", "mix"), ("fused_start", "mix_start"), ("fused_ridge", "mix_ridge")):
        text[was] = text.pop(now)
    (old / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
    return old


def test_a_checkpoint_saved_before_the_backbone_mix_was_named_loads_the_same(aligned_text, tiny_text_models,
                                                                             tiny_dataset, tmp_path):
    """Old weight names, part folders and config keys load to the same model; the old file keeps its fingerprint
    (an index built with it still searches with it)."""
    import hashlib
    import shutil

    from c2kd.checkpoint import WEIGHTS_FILE, load_resume_state
    from c2kd.formats import checkpoint_fingerprint
    from c2kd.search.model import check_fingerprint

    mixed_in = shutil.copytree(tiny_text_models["teacher_b"], tmp_path / "mixed-in")
    torch.manual_seed(2)
    model = build_model(aligned_config(aligned_text, mix=[mixed_in]))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))  # a gate off zero: the mix map changes the embeddings
    assert model.text.head.mix_gate.weight.abs().sum() > 0
    new = save_checkpoint(tmp_path / "new", model, TrainConfig(data={"path": str(tiny_dataset)}, model=model.config))
    old = as_saved_before_the_mix_was_named(new, tmp_path / "old")
    weights = old / WEIGHTS_FILE
    size = weights.stat().st_size
    head, tail = weights.read_bytes()[: 1 << 20], weights.read_bytes()[max(0, size - (1 << 20)):]
    recorded = hashlib.sha256(str(size).encode() + head + tail).hexdigest()[:16]  # what an index recorded
    shutil.rmtree(mixed_in)  # both rebuild the mixed-in backbone from their own folder, not from its source

    loaded_new, config_new = load_checkpoint(new)
    loaded_old, config_old = load_checkpoint(old)
    assert config_old == config_new == model.config
    texts = ["a dog runs", "zwei katzen", "un chat"]
    expected = model.eval().embed_texts(texts)
    assert torch.allclose(loaded_new.eval().embed_texts(texts), expected, atol=1e-6)
    assert torch.allclose(loaded_old.eval().embed_texts(texts), expected, atol=1e-6)
    assert checkpoint_fingerprint(old) == recorded
    check_fingerprint({"checkpoint": str(old), "checkpoint_fingerprint": recorded}, old, tmp_path / "index")

    # a run's resume state saved then: its weight average is by parameter name too
    average = {"decay": 0.9, "updates": 3, "average": {"text.head.fused_map.weight": torch.ones(1)}}
    torch.save({"trainer": {}, "average": average}, old / "trainer_state.pt")
    assert set(load_resume_state(old)["average"]["average"]) == {"text.head.mix_map.weight"}


def aligned_dataset(tiny_dataset, text_model_dir, out):
    """The tiny dataset's captions with frames that the text model itself embeds: its English captions' vectors
    plus noise. The aligned start is then strong, as an off-the-shelf aligned pair is."""
    import pyarrow.parquet as pq

    from c2kd.data.dataset import CAPTIONS_FILE, save_dataset
    from c2kd.data.features import FeatureStoreWriter
    from c2kd.encoders.text.hf import HFTextBackbone

    rows = pq.read_table(tiny_dataset / CAPTIONS_FILE).to_pylist()
    backbone = HFTextBackbone.from_pretrained(str(text_model_dir)).eval()
    rng = np.random.default_rng(0)
    english: dict[str, list[str]] = {}
    for row in rows:
        if row["lang"] == "en":
            english.setdefault(row["video_id"], []).append(row["text"])
    with torch.no_grad(), FeatureStoreWriter(out / "features", dim=16, encoder="text16") as writer:
        for vid, texts in english.items():
            vectors = backbone(backbone.prepare(texts, 35)).numpy()
            writer.add(vid, vectors + rng.normal(scale=0.05, size=vectors.shape).astype(np.float32))
    save_dataset(out, rows, name="aligned-tiny")
    return out


def test_training_never_hands_back_a_model_worse_than_its_start(aligned_text, tiny_dataset, tmp_path):
    """With a learning rate that wrecks every epoch, best/ is the untrained aligned model (epoch 0)."""
    data = aligned_dataset(tiny_dataset, aligned_text, tmp_path / "data")
    cfg = tiny_config(data, aligned_text, tmp_path / "run", epochs=2, **{
        "optim.lr": 50.0, "model.text.head": "aligned", "model.text.embed_dim": 16, "model.text.residual_hidden": 8,
        "model.video.embed_dim": 16, "model.video.aligned": "true"})
    out = train(cfg)
    state = torch.load(out / "last" / "trainer_state.pt", weights_only=False)["trainer"]
    history = json.loads((out / "history.json").read_text())
    start = state["start_metrics"]["t2v/average/R@1"]
    assert all(h["val/t2v/average/R@1"] < start for h in history), "the test needs epochs that validate worse"
    assert state["best_epoch"] == 0
    untrained = build_model(cfg.model).eval()
    best, _ = load_checkpoint(out)
    test = VideoTextDataset(data).split("test")
    assert RetrievalEvaluator(test, ["en"])(untrained)["t2v"]["en"]["R@1"] > 50  # a strong start
    expected = RetrievalEvaluator(test)(untrained)["t2v"]["average"]["R@1"]
    assert json.loads((out / "test_metrics.json").read_text())["t2v"]["average"]["R@1"] == pytest.approx(expected)
    assert RetrievalEvaluator(test)(best)["t2v"]["average"]["R@1"] == pytest.approx(expected)


def test_mix_map_starts_as_the_ridge_regression_solution():
    from c2kd.encoders.text.heads import AlignedTextHead

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6))
    y = x @ rng.normal(size=(6, 4)) + 0.1 * rng.normal(size=(200, 4))
    head = AlignedTextHead(in_dim=4 + 6, embed_dim=4, hidden=0)
    head.fit_mix_map(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32), ridge=2.0)
    expected = np.linalg.solve(x.T @ x + 2.0 * np.eye(6), x.T @ y).T  # [4, 6]
    np.testing.assert_allclose(head.mix_map.weight.detach().numpy(), expected, rtol=1e-4, atol=1e-5)
    # the gate is zero: the fitted map does not change the untrained output
    inputs = torch.randn(3, 10)
    a = inputs[:, :4] / inputs[:, :4].norm(dim=1, keepdim=True)
    assert torch.allclose(head(inputs), a, atol=1e-6)


def test_a_video_tower_without_layers_is_the_mean_of_its_normalised_frames():
    from c2kd.encoders.video import VideoEncoder, VideoEncoderConfig

    tower = VideoEncoder(VideoEncoderConfig(feature_dim=8, embed_dim=8, aligned=True, layers=0))
    assert list(tower.parameters()) == []
    frames, mask = torch.randn(2, 5, 8), torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    unit = frames / frames.norm(dim=-1, keepdim=True)
    assert torch.allclose(tower(frames, mask), torch.stack([unit[0, :2].mean(0), unit[1].mean(0)]), atol=1e-6)
    with pytest.raises(ValueError, match="aligned=true"):
        VideoEncoder(VideoEncoderConfig(feature_dim=8, embed_dim=8, layers=0))


def test_an_epoch_that_validates_below_the_start_in_a_language_is_not_kept(tmp_path):
    from c2kd.train.trainer import Loop, Trainer

    scripted = iter([{"avg": 50.0, "en": 60.0, "de": 40.0},   # the start
                     {"avg": 55.0, "en": 59.0, "de": 51.0},   # better on average, but English fell
                     {"avg": 53.0, "en": 61.0, "de": 45.0},   # better everywhere: kept
                     {"avg": 54.0, "en": 60.0, "de": 39.0}])  # German fell
    model = torch.nn.Linear(2, 1)
    batches = [torch.randn(4, 2) for _ in range(2)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = Trainer(model, lambda x: {"loss": model(x).pow(2).mean()}, batches, optimizer, None, tmp_path,
                      torch.device("cpu"), Loop(epochs=3, progress=False, tensorboard=False),
                      evaluate=lambda m: next(scripted), monitor="avg", floor=["en", "de"])
    state = trainer.fit()
    assert state.best_epoch == 2 and state.best_metric == 53.0
