"""Towers: mean pooling over the model's own mask, padding invariance, frozen backbones, checkpoints."""

import numpy as np
import pytest
import torch

from c2kd.checkpoint import load_checkpoint, save_checkpoint
from c2kd.data.batching import pad_frames, sample_frame_indices
from c2kd.encoders.text.hf import HFTextBackbone
from c2kd.encoders.text.tower import TextEncoder
from c2kd.encoders.video import VideoEncoder, VideoEncoderConfig
from c2kd.errors import CheckpointError
from c2kd.model import ModelConfig, build_model
from c2kd.train.config import TrainConfig


def test_mean_pooling_matches_per_sentence_reference(tiny_text_models):
    backbone = HFTextBackbone.from_pretrained(str(tiny_text_models["student"])).eval()
    texts = ["a dog runs in the park", "the cat"]
    batched = backbone(backbone.prepare(texts, 35))
    for i, text in enumerate(texts):
        ids = backbone.tokenizer(text, return_tensors="pt")
        hidden = backbone.model(**ids).last_hidden_state[0]
        assert torch.allclose(batched[i], hidden.mean(dim=0), atol=1e-5)


def test_tokenisation_is_cached_per_string(tiny_text_models):
    backbone = HFTextBackbone.from_pretrained(str(tiny_text_models["student"]))
    backbone.prepare(["a b", "c d"], 35)
    calls = []
    original = backbone.tokenizer.__call__
    backbone.tokenizer.__class__.__call__ = lambda self, *a, **k: calls.append(a) or original(*a, **k)
    try:
        backbone.prepare(["c d", "a b", "c d"], 35)
    finally:
        del backbone.tokenizer.__class__.__call__
    assert calls == []


def test_video_encoder_ignores_padding_and_frame_scale():
    torch.manual_seed(0)
    enc = VideoEncoder(VideoEncoderConfig(feature_dim=8, embed_dim=16, dropout=0.0, max_frames=10)).eval()
    feats = [np.random.default_rng(1).standard_normal((4, 8)), np.random.default_rng(2).standard_normal((7, 8))]
    frames, mask = pad_frames(feats, 10)
    alone, alone_mask = pad_frames(feats[:1], 10)
    with torch.no_grad():
        both = enc(frames, mask)
        single = enc(alone, alone_mask)
        scaled = enc(frames * 3.0, mask)
    assert torch.allclose(both[0], single[0], atol=1e-5)  # 3 padded frames change nothing
    assert torch.allclose(both, scaled, atol=1e-5)  # frames are L2-normalised first


def test_frame_sampling_is_uniform_and_bounded():
    assert sample_frame_indices(5, 30).tolist() == [0, 1, 2, 3, 4]
    idx = sample_frame_indices(100, 30)
    assert len(idx) == 30 and idx[0] == 0 and idx[-1] == 99 and np.all(np.diff(idx) > 0)


def test_frozen_backbone_gets_no_gradient(tiny_text_models):
    backbone = HFTextBackbone.from_pretrained(str(tiny_text_models["student"]))
    enc = TextEncoder(backbone, embed_dim=8, trainable=False).train()
    assert not backbone.training
    out = enc(enc.prepare(["a dog"], 35))
    out.sum().backward()
    assert all(p.grad is None for p in backbone.parameters())
    assert enc.head.projection.linear.weight.grad is not None


def test_checkpoint_round_trip_and_strict_loading(tmp_path, tiny_text_models, tiny_dataset):
    cfg = TrainConfig.model_validate({"data": {"path": str(tiny_dataset)}, "model": {
        "text": {"name": str(tiny_text_models["student"]), "embed_dim": 16},
        "video": {"feature_dim": 16, "embed_dim": 16}}})
    model = build_model(cfg.model).eval()
    save_checkpoint(tmp_path / "ck", model, cfg)
    loaded, loaded_cfg = load_checkpoint(tmp_path / "ck")
    loaded.eval()
    assert loaded_cfg == cfg.model
    assert torch.allclose(model.embed_texts(["a dog runs"]), loaded.embed_texts(["a dog runs"]))
    # the checkpoint carries its tokenizer and architecture: it loads even after the source model is gone
    bigger = cfg.model_copy(deep=True)
    bigger.model.video.embed_dim = bigger.model.text.embed_dim = 32
    save_checkpoint(tmp_path / "other", build_model(bigger.model), bigger)
    (tmp_path / "other" / "model.safetensors").replace(tmp_path / "ck" / "model.safetensors")
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(tmp_path / "ck")
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        load_checkpoint(tmp_path / "nothing")
    (tmp_path / "ck" / "model.safetensors").unlink()  # its checkpoint.json stays
    with pytest.raises(CheckpointError, match=r"model\.safetensors is missing"):
        load_checkpoint(tmp_path / "ck")


def test_model_config_rejects_mismatched_dims(tiny_text_models):
    cfg = ModelConfig.model_validate({"text": {"name": str(tiny_text_models["student"]), "embed_dim": 16},
                                      "video": {"feature_dim": 16, "embed_dim": 32}})
    with pytest.raises(ValueError, match="embed_dim"):
        build_model(cfg)
