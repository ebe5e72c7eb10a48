"""A saved text backbone records its kind in ``backbone.json`` and is rebuilt by it; folders saved before the record
(a Hugging Face config alone, ``packaged.json``, ``cached_backbone.json``, ``fused-<i>`` mix parts) still load."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from clipkit import make_tiny_clip_model, make_tiny_st_model
from siglipkit import make_tiny_siglip

from c2kd.encoders.text.base import BACKBONE_FILE, TEXT_BACKBONES, TextBackbone, read_record
from c2kd.encoders.text.clip import CLIPTextBackbone
from c2kd.encoders.text.hf import HFTextBackbone
from c2kd.encoders.text.loading import build_text_backbone, legacy_record, rebuild_text_backbone
from c2kd.encoders.text.sentence_transformers import SentenceTransformerTextBackbone
from c2kd.encoders.text.siglip import SiglipTextBackbone
from c2kd.errors import CheckpointError, ConfigError

TEXTS = ["a man is talking about a car", "ein mann spricht", "people dance"]


def _vectors(backbone: TextBackbone) -> torch.Tensor:
    with torch.no_grad():
        return backbone.eval()(backbone.prepare(TEXTS, 40))


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_hf):
    root = tmp_path_factory.mktemp("kinds")
    return {"hf": (str(tiny_hf), HFTextBackbone),
            "clip-text": (f"clip:{make_tiny_clip_model(root / 'clip')}", CLIPTextBackbone),
            "sentence-transformers": (f"st:{make_tiny_st_model(root / 'st', TEXTS)[0]}",
                                      SentenceTransformerTextBackbone),
            "siglip-text": (f"siglip:{make_tiny_siglip(root / 'siglip2', kind='siglip2')}", SiglipTextBackbone)}


@pytest.mark.parametrize("kind", ["hf", "clip-text", "sentence-transformers", "siglip-text"])
def test_each_family_records_its_kind_and_is_rebuilt_by_it(folders, kind, tmp_path):
    name, cls = folders[kind]
    backbone = build_text_backbone(name)
    assert type(backbone) is cls
    backbone.save_architecture(tmp_path / "arch")
    record = read_record(tmp_path / "arch")
    assert record is not None and record["kind"] == kind == cls.kind and record["dim"] == backbone.dim
    assert TEXT_BACKBONES.get(kind) is cls
    rebuilt = rebuild_text_backbone(name, tmp_path / "arch")
    assert type(rebuilt) is cls and rebuilt.name == name
    rebuilt.load_state_dict(backbone.state_dict())  # the weights come from the checkpoint
    torch.testing.assert_close(_vectors(rebuilt), _vectors(backbone), atol=1e-6, rtol=1e-6)


def test_the_recorded_kind_decides_not_the_folder(folders, tmp_path):
    """A CLIP tower saved as it is: the folder holds a plain text config and tokenizer, like a mean-pooled model;
    only the record says it is CLIP's projected end-of-text token."""
    name, _ = folders["clip-text"]
    backbone = build_text_backbone(name)
    backbone.save_architecture(tmp_path / "arch")
    assert type(rebuild_text_backbone(name, tmp_path / "arch")) is CLIPTextBackbone
    record = json.loads((tmp_path / "arch" / BACKBONE_FILE).read_text())
    (tmp_path / "arch" / BACKBONE_FILE).write_text(json.dumps({**record, "kind": "hf"}))
    assert type(rebuild_text_backbone(name, tmp_path / "arch")) is HFTextBackbone


def test_an_old_hf_folder_without_a_record_is_rebuilt_as_mean_pooled(tiny_hf, tmp_path):
    backbone = build_text_backbone(str(tiny_hf))
    old = tmp_path / "old"
    backbone.model.config.save_pretrained(old)  # what c2kd wrote before the record: config + tokenizer
    backbone.tokenizer.save_pretrained(old)
    assert not (old / BACKBONE_FILE).exists()
    assert legacy_record(old) == {"kind": "hf"}
    rebuilt = rebuild_text_backbone("models/student-text", old)
    assert type(rebuilt) is HFTextBackbone and rebuilt.name == "models/student-text"
    rebuilt.load_state_dict(backbone.state_dict())
    torch.testing.assert_close(_vectors(rebuilt), _vectors(backbone))


def test_old_records_of_packaged_and_cached_backbones_are_rebuilt_by_name(tiny_hf, tmp_path):
    for marker in ("packaged.json", "cached_backbone.json"):
        old = tmp_path / marker
        old.mkdir()
        (old / marker).write_text(json.dumps({"name": str(tiny_hf), "dim": 32}))
        assert legacy_record(old) is None
        assert type(rebuild_text_backbone(str(tiny_hf), old)) is HFTextBackbone  # built by its name
    assert type(rebuild_text_backbone(str(tiny_hf), tmp_path / "nothing-here")) is HFTextBackbone


def test_a_cached_backbone_records_that_its_weights_were_not_saved(tiny_hf, tmp_path):
    from c2kd.encoders.text.cache import CachedTextBackbone

    inner = build_text_backbone(str(tiny_hf))
    CachedTextBackbone(inner, tmp_path / "cache").save_architecture(tmp_path / "arch")
    record = read_record(tmp_path / "arch")
    assert record is not None and record["kind"] == "cached" and record["inner"]["kind"] == "hf"
    assert not (tmp_path / "arch" / "config.json").exists()
    rebuilt = rebuild_text_backbone(str(tiny_hf), tmp_path / "arch")  # the pretrained weights, by name
    torch.testing.assert_close(_vectors(rebuilt), _vectors(inner))


def test_an_unknown_or_damaged_record_is_one_clear_error(tmp_path):
    (tmp_path / BACKBONE_FILE).write_text(json.dumps({"kind": "hologram", "name": "x"}))
    with pytest.raises(ConfigError, match=r"unknown saved text backbone kind 'hologram'.*upgrade c2kd"):
        rebuild_text_backbone("x", tmp_path)
    (tmp_path / BACKBONE_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match=r"backbone\.json is not valid JSON"):
        rebuild_text_backbone("x", tmp_path)


def test_an_old_checkpoint_loads_and_scores_as_before(tiny_dataset, tiny_hf, tmp_path):
    """A whole checkpoint in the old layout (no record, the mix's part in ``fused-1``) loads and embeds exactly as
    the same checkpoint in the new layout, with its text models gone from where they were loaded (no hub here)."""
    from c2kd.checkpoint import load_checkpoint, save_checkpoint
    from c2kd.encoders.text.tower import TextEncoderConfig
    from c2kd.encoders.video import VideoEncoderConfig
    from c2kd.model import ModelConfig, build_model
    from c2kd.train.config import TrainConfig

    first, second = (shutil.copytree(tiny_hf, tmp_path / name) for name in ("first", "second"))
    config = ModelConfig(text=TextEncoderConfig(name=str(first), mix=[str(second)], embed_dim=16),
                         video=VideoEncoderConfig(feature_dim=16, embed_dim=16))
    torch.manual_seed(0)
    model = build_model(config)
    new = save_checkpoint(tmp_path / "new", model.eval(),
                          TrainConfig(data={"path": str(tiny_dataset)}, model=config, out_dir=str(tmp_path / "new")))
    old = shutil.copytree(new, tmp_path / "old")
    arch = old / "text_backbone"
    assert (arch / BACKBONE_FILE).exists() and (arch / "mix-1" / BACKBONE_FILE).exists()
    (arch / BACKBONE_FILE).unlink()
    (arch / "mix-1" / BACKBONE_FILE).unlink()
    (arch / "mix-1").rename(arch / "fused-1")
    expected = model.embed_texts(TEXTS)
    shutil.rmtree(first)
    shutil.rmtree(second)
    for folder in (new, old):
        loaded, _ = load_checkpoint(folder)
        torch.testing.assert_close(loaded.eval().embed_texts(TEXTS), expected)
