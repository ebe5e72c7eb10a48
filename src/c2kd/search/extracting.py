"""Frame features for a video file given to ``c2kd moments`` (uses the ingestion package ``c2kd.features``)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from c2kd.errors import DataError


def default_frame_encoder(feature_dim: int, store_encoder: str | None = None) -> str:
    """The frame encoder to use: the one recorded in the feature store, else the preset of that feature size."""
    if store_encoder:
        return store_encoder
    from c2kd.encoders.registry import FRAME_PRESETS

    names = [name for name, preset in FRAME_PRESETS.items() if preset.dim == feature_dim]
    if not names:
        raise DataError(f"no known frame encoder gives {feature_dim}-d features; pass --encoder NAME "
                        "(the encoder the model was trained on)")
    return names[0]


def features_from_file(path: str | os.PathLike, encoder_name: str, fps: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Decode a video at ``fps`` and encode its frames.

    Shape:
        -> features [T, D] float32, times [T] float32 seconds
    """
    path = Path(path)
    if importlib.util.find_spec("c2kd.features") is None:
        raise DataError(f"{path} is a video file, but this installation has no frame extractor "
                        "(c2kd.features). Extract it with `c2kd extract` and pass its id with --features STORE.")
    from c2kd.features.decode import sample_frames
    from c2kd.features.encoders import build_frame_encoder

    encoder = build_frame_encoder(encoder_name)
    resize = getattr(getattr(encoder, "preprocess", None), "resize", None)
    frames, times = sample_frames(path, fps, transform=resize)
    if not frames:
        raise DataError(f"{path}: no frames could be sampled; is it a video?")
    return np.asarray(encoder.encode(frames), np.float32), np.asarray(times, np.float32)
