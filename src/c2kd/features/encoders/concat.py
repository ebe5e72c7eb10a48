"""Several frame encoders run on the same frames, their features side by side (what a fused model reads)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from c2kd.encoders.frames import CONCAT, FrameEncoderSpec
from c2kd.errors import ConfigError
from c2kd.features.encoders.base import (
    FrameEncoder,
    build_frame_encoder,
    encoder_options,
    encoder_spec,
    factory_parameters,
    not_buildable,
    register_frame_encoder,
)


class ConcatFrameEncoder(FrameEncoder):
    """Several frame encoders run on the same frames, their features side by side: what a fused model reads when
    its members read different encoders. Frames are decoded at full size (``preprocess`` None) and each part
    resizes them its own way, as it would alone.

    Shape:
        encode: N x [H, W, 3] uint8 RGB -> [N, sum of the parts' dims] float32
    """

    name = CONCAT

    def __init__(self, parts: Sequence[FrameEncoder]):
        self.parts = list(parts)
        self.dim = sum(part.dim for part in self.parts)
        self.preprocess = None

    def encode(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        if len(frames) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate([part.encode(frames) for part in self.parts], axis=1)

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        raise TypeError("the parts of a concat encoder preprocess frames their own ways: call encode(frames)")

    def describe(self) -> dict[str, Any]:
        return {"encoder": self.name, "dim": self.dim,
                "parts": [encoder_spec(part).model_dump(mode="json") for part in self.parts]}


@register_frame_encoder(CONCAT)
def _build_concat(parts: Sequence[Any] = (), device: str | None = None, threads: int = 0) -> FrameEncoder:
    specs = [FrameEncoderSpec.model_validate(part) for part in parts]
    if len(specs) < 2:
        raise ConfigError("the concat frame encoder runs the parts a fused model reads: extract with "
                          "`c2kd extract VIDEOS --checkpoint FUSED --out STORE`")
    built = []
    for i, spec in enumerate(specs, start=1):
        if factory_parameters(spec.name) is None:
            raise ConfigError(f"part {i} of {len(specs)}, {spec.describe()}: {not_buildable(spec.name)}. Make a "
                              "store of each part and join them with `c2kd data concat-features`")
        options = encoder_options(spec)
        accepted = factory_parameters(spec.name) or set()
        options.update((key, value) for key, value in (("device", device), ("threads", threads))
                       if value and key in accepted)
        built.append(build_frame_encoder(spec.name, **options))
    return ConcatFrameEncoder(built)
