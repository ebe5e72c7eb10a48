"""Frame features for search: the checkpoint's frame encoder checked against stores, and run on video files.

A checkpoint records the frame encoder its video tower reads (``model.frame_encoder``: a list of
:class:`~c2kd.encoders.frames.FrameEncoderSpec` parts). :func:`check_store_encoder` refuses a feature store made by
another encoder (or another CLIP model); :func:`features_from_file` (``c2kd moments`` on a video file) runs the
checkpoint's encoder with its options. Checkpoints that record none keep the older behaviour: the store's
encoder, else the preset of the model's feature size.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from c2kd.encoders.frames import (
    FRAME_PRESETS,
    NOT_VIDEO,
    FrameEncoderSpec,
    check_frame_encoder,
    joined,
    parts_of,
    presets_of_size,
    store_frame_encoder,
)
from c2kd.errors import DataError


def default_frame_encoder(feature_dim: int, store_encoder: str | None = None) -> str:
    """The frame encoder to use: the one recorded in the feature store, else the one preset of that feature size."""
    if store_encoder:
        return store_encoder
    names = presets_of_size(feature_dim)
    if len(names) != 1:
        known = f" ({' or '.join(names)})" if names else ""
        raise DataError(f"{'several' if names else 'no'} known frame encoders give {feature_dim}-d features{known}; "
                        "pass --encoder NAME (the encoder the model was trained on)")
    return names[0]


def _has_extractor() -> bool:
    return importlib.util.find_spec("c2kd.features") is not None


def extract_hint(parts: Sequence[FrameEncoderSpec], checkpoint: str | os.PathLike | None = None) -> str:
    """How to make features the model can read: ``c2kd extract --checkpoint`` (or the encoder's options)."""
    names = frame_encoder_names() if _has_extractor() else {}
    if len(parts) > 1:
        if checkpoint is not None and all(part.name in names for part in parts):
            return (f"Extract the videos with the fused model's frame encoders: `c2kd extract VIDEOS --checkpoint "
                    f"{checkpoint} --out NEW_STORE`.")
        return concat_hint(parts)
    expected = parts[0]
    if expected.name in names:
        model = expected.options.get("model")
        manual = f"--encoder {expected.name}" + (f" --model {model}" if model else "")
        if checkpoint is not None:
            return (f"Extract the videos with the model's frame encoder: `c2kd extract VIDEOS --checkpoint "
                    f"{checkpoint} --out NEW_STORE` (that is, {manual}).")
        return f"Extract the videos with the model's frame encoder: `c2kd extract VIDEOS {manual} --out NEW_STORE`."
    if expected.name not in FRAME_PRESETS:
        return NOT_VIDEO.format(name=expected.name) + "."
    return f"Use features made by {expected.describe()}, the frame encoder this model reads."


def concat_hint(parts: Sequence[FrameEncoderSpec]) -> str:
    """How to make the ``concat`` features of parts ``c2kd extract`` cannot all compute: one store per part, then
    join them in order."""
    names = frame_encoder_names() if _has_extractor() else {}
    steps = []
    for i, part in enumerate(parts, start=1):
        if part.name in names:
            model = f" --model {part.options['model']}" if "model" in part.options else ""
            steps.append(f"STORE{i}: `c2kd extract VIDEOS --encoder {part.name}{model} --out STORE{i}`")
        else:
            steps.append(f"STORE{i}: a store of {part.describe()} features")
    stores = " ".join(f"STORE{i}" for i in range(1, len(steps) + 1))
    return (f"Make one store per part ({'; '.join(steps)}), then join them in this order: "
            f"`c2kd data concat-features {stores} --out NEW_STORE`.")


def frame_encoder_names() -> dict[str, str]:
    from c2kd.features.encoders import frame_encoder_names as names

    return names()


def check_features(expected: Sequence[FrameEncoderSpec], found: Sequence[FrameEncoderSpec], where: str,
                   checkpoint: str | os.PathLike | None = None) -> None:
    """Refuse features whose encoders differ from the model's (either side unknown: nothing to check), with the
    command that makes the right ones (:func:`c2kd.encoders.frames.check_frame_encoder` decides)."""
    if expected and found:
        check_frame_encoder(expected, found, where, fix=extract_hint(expected, checkpoint))


def check_store_encoder(model, store, checkpoint: str | os.PathLike | None = None) -> None:
    """Refuse a feature store made by another frame encoder than the one ``model`` reads, or of another size."""
    check_features(model.frame_encoder, store_frame_encoder(store.meta), f"feature store {store.root}",
                   checkpoint)
    if store.dim != model.feature_dim:
        raise DataError(f"{store.root} holds {store.dim}-d frame features but {checkpoint or 'the model'} reads "
                        f"{model.feature_dim}-d ones; use features made by the frame encoder the "
                        "model was trained on")


def encoder_for_file(parts: Sequence[FrameEncoderSpec], feature_dim: int,
                     explicit: str | None = None) -> tuple[str, dict[str, Any]]:
    """Which frame encoder (and options) turns a video file into the features a model reads.

    The checkpoint's recorded encoder with its options (e.g. CLIP's ``model``); ``explicit`` (``--encoder``)
    overrides the name, and is checked against the recorded one when the features are made. With nothing
    recorded: ``explicit``, else the preset of ``feature_dim``.
    """
    spec = joined(parts)
    if spec is None:
        return explicit or default_frame_encoder(feature_dim), {}
    from c2kd.features.encoders import recorded_encoder

    name, options = recorded_encoder(spec, explicit or None)
    return name or spec.name, options


def features_from_file(path: str | os.PathLike, encoder_name: str, fps: float = 1.0,
                       options: Mapping[str, Any] | None = None, expected: Sequence[FrameEncoderSpec] = (),
                       checkpoint: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Decode a video at ``fps`` and encode its frames with ``encoder_name`` (built with ``options``).

    With ``expected`` (the checkpoint's frame encoder) an encoder that makes other features is refused before
    any decoding.

    Shape:
        -> features [T, D] float32, times [T] float32 seconds, the video's length in seconds
    """
    path = Path(path)
    if not _has_extractor():
        raise DataError(f"{path} is a video file, but this installation has no frame extractor "
                        "(c2kd.features). Extract it with `c2kd extract` and pass its id with --features STORE.")
    from c2kd.features.decode import sample_video
    from c2kd.features.encoders import build_frame_encoder, encoder_spec

    encoder = build_frame_encoder(encoder_name, **dict(options or {}))
    check_features(expected, parts_of(encoder_spec(encoder)), f"frame encoder for {path.name}", checkpoint)
    resize = getattr(getattr(encoder, "preprocess", None), "resize", None)
    frames, times, duration = sample_video(path, fps, transform=resize)
    if not frames:
        raise DataError(f"{path}: no frames could be sampled; is it a video?")
    return np.asarray(encoder.encode(frames), np.float32), np.asarray(times, np.float32), duration
