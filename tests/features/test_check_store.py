"""A store accepts more features exactly when the one compatibility rule (``mismatches``) finds none."""

from __future__ import annotations

import itertools
import shutil

import numpy as np
import pytest
from videokit import make_pool_project_onnx, write_colour_seconds

from c2kd.data.features import FeatureStore
from c2kd.encoders.frames import mismatches, parts_of, store_frame_encoder
from c2kd.errors import ConfigError
from c2kd.features.encoders import build_frame_encoder, encoder_spec
from c2kd.features.extract import ExtractConfig, check_store, extract_videos


@pytest.fixture(scope="module")
def encoders(tmp_path_factory, tiny_onnx, focus_cache):
    """Real encoders that differ in one setting each (model file, size, mean, resample, pool) or in nothing but
    how the model is named (a copy of the file, a relative path), and one of another family."""
    folder = tmp_path_factory.mktemp("models")
    other = make_pool_project_onnx(folder / "other.onnx", np.random.default_rng(9).normal(size=(3, 6)))
    same_file = shutil.copy(tiny_onnx, folder / "tiny.onnx")
    base = {"model": str(tiny_onnx), "size": 48}
    return {
        "base": build_frame_encoder("onnx", **base),
        "again": build_frame_encoder("onnx", **base, batch_size=3),  # batching does not change features
        "copy": build_frame_encoder("onnx", **{**base, "model": str(same_file)}),
        "other-model": build_frame_encoder("onnx", **{**base, "model": str(other)}),
        "mean": build_frame_encoder("onnx", **base, mean="clip"),
        "resample": build_frame_encoder("onnx", **base, resample="bilinear"),
        "pad": build_frame_encoder("onnx", **base, mode="pad"),
        "pool": build_frame_encoder("onnx", **base, pool="mean"),
        "focus": build_frame_encoder("vit-s14-focus", cache_dir=str(focus_cache)),
    }


@pytest.fixture(scope="module")
def stores(tmp_path_factory, encoders):
    """One store per encoder, written by a real extraction of a 2 s video."""
    root = tmp_path_factory.mktemp("stores")
    video = write_colour_seconds(root / "v.mp4", seconds=2)
    out = {}
    for name, encoder in encoders.items():
        extract_videos([video], encoder, root / name, ExtractConfig(progress=False, workers=0))
        out[name] = root / name
    return out


def test_check_store_refuses_exactly_what_mismatches_finds(encoders, stores, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    refused = set()
    for (stored, store), (run, encoder) in itertools.product(stores.items(), encoders.items()):
        problems = mismatches(store_frame_encoder(FeatureStore(store).meta), parts_of(encoder_spec(encoder)))
        try:
            check_store(store, encoder, fps=1.0)
        except ConfigError as exc:
            refused.add((stored, run))
            assert problems and "; ".join(problems) in str(exc), (stored, run)
            assert "Extract with the store's settings (--encoder" in str(exc)
        else:
            assert not problems, (stored, run)
    same = {("base", "again"), ("again", "base")}
    assert not same & refused  # the rule is not vacuous either way
    assert {("base", other) for other in ("copy", "other-model", "mean", "resample", "pad", "pool", "focus")} <= refused


def test_a_model_named_by_a_relative_path_is_the_same_model(tmp_path, tiny_onnx, monkeypatch):
    monkeypatch.chdir(tiny_onnx.parent)
    relative = build_frame_encoder("onnx", model=tiny_onnx.name, size=48)
    absolute = build_frame_encoder("onnx", model=str(tiny_onnx), size=48)
    assert encoder_spec(relative) == encoder_spec(absolute)
    assert encoder_spec(relative).options["model"] == str(tiny_onnx.resolve())
