"""c2kd.encoders.text.siglip: SigLIP / SigLIP 2 text embeddings equal transformers' own pipeline (the model's
tokenizer with ``padding="max_length"`` to the trained length, ``get_text_features``, L2-normalised) on tiny
random-config models written offline; the padding length is the model's, and changing it changes the vectors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from siglipkit import KINDS, TEXT_LENGTH, make_tiny_siglip

from c2kd.encoders.text.loading import build_text_backbone, rebuild_text_backbone
from c2kd.encoders.text.siglip import SiglipTextBackbone

#: several languages and scripts, one text longer than the trained length (cut, as transformers cuts it)
TEXTS = ["a man is talking about a car", "ein mann spricht über ein auto", "une femme cuisine des pâtes",
         "два человека играют в футбол", "một người đàn ông đang nói", "一个男人在说话", "",
         "cartoon dog running on the grass " * 6]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("siglip")
    return {kind: make_tiny_siglip(root / kind, kind=kind) for kind in KINDS}


def reference(folder, texts, length: int = TEXT_LENGTH) -> torch.Tensor:
    """transformers' pipeline, as its SigLIP documentation writes it."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    inputs = tokenizer(texts, padding="max_length", max_length=length, truncation=True, return_tensors="pt")
    with torch.no_grad():
        return F.normalize(model.get_text_features(**inputs).pooler_output, dim=-1)


def embed(backbone, texts, max_tokens: int = 40) -> torch.Tensor:
    with torch.no_grad():
        return backbone.eval()(backbone.prepare(texts, max_tokens))


@pytest.mark.parametrize("kind", KINDS)
def test_text_embeddings_equal_transformers_pipeline(folders, kind):
    expected = reference(folders[kind], TEXTS)
    for name in (f"siglip:{folders[kind]}", str(folders[kind])):  # a SigLIP folder is recognised as it is
        backbone = build_text_backbone(name)
        assert isinstance(backbone, SiglipTextBackbone) and backbone.dim == expected.shape[1]
        got = embed(backbone, TEXTS)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got.norm(dim=-1), torch.ones(len(TEXTS)))
        # one text at a time, in another order, or with a short token limit: the same vectors (fixed length)
        torch.testing.assert_close(embed(backbone, TEXTS[::-1], max_tokens=8), expected.flip(0), atol=1e-5,
                                   rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_texts_are_padded_to_the_trained_length_and_another_length_changes_them(folders, kind):
    backbone = build_text_backbone(f"siglip:{folders[kind]}")
    inputs = backbone.prepare(TEXTS, 40)
    assert backbone.length == TEXT_LENGTH and inputs["input_ids"].shape == (len(TEXTS), TEXT_LENGTH)
    got = embed(backbone, TEXTS)
    for other in (TEXT_LENGTH // 2, TEXT_LENGTH - 1):  # another padding length gives other vectors
        assert (reference(folders[kind], TEXTS, other) - got).abs().max() > 1e-3


def test_the_released_models_length_is_read_from_their_config(folders):
    """The released SigLIP / SigLIP 2 models were trained on 64 tokens (``max_position_embeddings``): that is
    what texts are padded to, whatever the tokenizer's own ``model_max_length`` says."""
    from transformers import AutoConfig, AutoTokenizer, SiglipTextModel

    config = AutoConfig.from_pretrained(folders["siglip2"]).text_config
    config.max_position_embeddings = 64
    tokenizer = AutoTokenizer.from_pretrained(folders["siglip2"])
    tokenizer.model_max_length = 10_000
    backbone = SiglipTextBackbone(SiglipTextModel(config).eval(), tokenizer, name="released-shape")
    assert backbone.length == 64 and backbone.prepare(TEXTS, 35)["input_ids"].shape == (len(TEXTS), 64)


@pytest.mark.parametrize("kind", KINDS)
def test_saved_and_rebuilt_without_the_model_folder(folders, kind, tmp_path):
    backbone = build_text_backbone(f"siglip:{folders[kind]}")
    backbone.save_architecture(tmp_path / "arch")
    assert not list((tmp_path / "arch").glob("*.safetensors"))  # the weights go in the checkpoint
    rebuilt = rebuild_text_backbone("siglip2-base-patch16-256-text", tmp_path / "arch")
    assert isinstance(rebuilt, SiglipTextBackbone) and rebuilt.length == backbone.length
    rebuilt.load_state_dict(backbone.state_dict())
    torch.testing.assert_close(embed(rebuilt, TEXTS), reference(folders[kind], TEXTS), atol=1e-5, rtol=1e-5)


def test_an_aligned_model_scores_with_the_siglip_vector_and_its_backbone_trains(folders, tmp_path):
    """The aligned text tower hands on the SigLIP vector untouched (a teacher's or a start's text tower); with a
    trainable backbone, gradients reach SigLIP's own weights (a student's)."""
    from c2kd.checkpoint import load_checkpoint, save_checkpoint
    from c2kd.model import build_model
    from c2kd.train.config import TrainConfig
    from c2kd.zeroshot import aligned_model_config

    name = str(folders["siglip2"])
    config = aligned_model_config(name, None, dim=16, trainable=True)
    model = build_model(config)
    expected = reference(folders["siglip2"], TEXTS)
    torch.testing.assert_close(model.eval().embed_texts(TEXTS), expected, atol=1e-5, rtol=1e-5)
    save_checkpoint(tmp_path / "ckpt", model, TrainConfig(data={"path": "none"}, model=config,
                                                         out_dir=str(tmp_path / "ckpt")))
    loaded, _ = load_checkpoint(tmp_path / "ckpt")
    torch.testing.assert_close(loaded.eval().embed_texts(TEXTS), expected, atol=1e-5, rtol=1e-5)

    model.train()
    inputs = model.text.prepare(TEXTS[:3], 35)
    model.encode_text(inputs).sum().backward()
    grads = [p.grad for p in model.text.backbone.model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
