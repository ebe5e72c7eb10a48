"""What a model's video tower reads: the frame encoder, recorded in every checkpoint and checked against data.

A model trained on CLIP ViT-B/32 frames cannot read ViT-S/14 frames, nor CLIP frames of another CLIP model, even
when the feature sizes agree. :class:`FrameEncoderSpec` names the encoder, its feature size and the options that
change the features; feature stores record the same facts (``store.json``: ``encoder``, ``dim``, ``extractor``),
and :func:`mismatches` is the one rule that decides whether two records hold the same features
(:func:`check_frame_encoder` refuses a mismatch with one message that names the right encoder).

:data:`FRAME_PRESETS` is the one list of frame encoder names, data only: each is an encoder
``c2kd.features.encoders`` can build (registered there under the same name, which must be a preset), a shortcut
for one of them with fixed options (``runs``), or features ``c2kd extract`` cannot make (``not_extractable``).
Nothing adds to it at import time, so the rule answers the same whatever was imported. It lives in
:mod:`c2kd.encoders.frame_presets` (plain data, so ``c2kd --help`` lists the names without importing pydantic).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from c2kd.encoders.frame_presets import FRAME_PRESETS
from c2kd.errors import ConfigError

#: what to say of features no frame encoder makes: a model of the Multi30K text proxy reads caption embeddings of
#: a text backbone (e.g. packaged-muse) in place of frames, and cannot search video
NOT_VIDEO = ("{name} is a text encoder, not a video frame encoder: this model was made on the Multi30K text proxy "
             "(caption embeddings stand in for frames) and cannot search video files. For real videos, make a "
             "model that reads CLIP frames: `c2kd model aligned --text mclip-vit-b32 --frame-encoder clip-vit-b32 "
             "--out MODEL`, then `c2kd extract VIDEOS --checkpoint MODEL --out STORE` (docs/search.md)")

#: the name under which checkpoints and stores record several parts side by side (see :func:`joined`)
CONCAT = "concat"


#: option keys of a store's ``extractor`` record that change the features (the rest describe, e.g. ``dim``)
FEATURE_OPTIONS = ("model", "preprocess", "pool", "output", "parts", "max_num_patches")


class FrameEncoderSpec(BaseModel):
    """One frame encoder whose features a model reads: what ``c2kd extract`` must run for this model.

    ``name`` is a frame encoder of ``c2kd extract`` (e.g. ``clip-vit-b32``), or, for the Multi30K proxy, the text
    backbone that encoded its "frames" (``packaged-muse``); ``options`` are the settings that change the
    features (e.g. ``model``: the CLIP checkpoint; ``pool``). A model that reads several encoders' features side
    by side reads a list of parts; checkpoints and stores record such a list as one ``concat`` spec
    (:func:`joined`, :func:`parts_of`).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    dim: int = Field(ge=1)
    options: dict[str, Any] = Field(default_factory=dict)

    def describe(self) -> str:
        if self.name == CONCAT:
            return describe_parts(parts_of(self))
        options = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items()) if k != "preprocess")
        return f"{self.name} ({self.dim}-d{', ' + options if options else ''})"


def parts_of(spec: FrameEncoderSpec | None) -> list[FrameEncoderSpec]:
    """The parts a recorded spec stands for: a ``concat`` record's parts in order, else the spec itself (None:
    nothing recorded, ``[]``)."""
    if spec is None:
        return []
    if spec.name != CONCAT:
        return [spec]
    return [FrameEncoderSpec.model_validate(part) for part in spec.options.get("parts", [])]


def joined(parts: Sequence[FrameEncoderSpec]) -> FrameEncoderSpec | None:
    """The one spec that records ``parts`` in a checkpoint or store: the part itself, or ``concat`` of several
    (frame ``t`` of each, side by side in this order); ``[]``: None.

    Example: ``joined([muse_512, e5_384])`` -> ``concat`` of 896-d features whose ``parts`` are the two specs.
    """
    if len(parts) <= 1:
        return parts[0] if parts else None
    return FrameEncoderSpec(name=CONCAT, dim=sum(p.dim for p in parts),
                            options={"parts": [p.model_dump(mode="json") for p in parts]})


def describe_parts(parts: Sequence[FrameEncoderSpec]) -> str:
    """``parts`` for a message: one part's description, or ``concat of A + B (N-d)``."""
    if len(parts) == 1:
        return parts[0].describe()
    return f"concat of {' + '.join(part.describe() for part in parts)} ({sum(p.dim for p in parts)}-d)"


def store_frame_encoder(meta: Mapping[str, Any]) -> list[FrameEncoderSpec]:
    """The frame encoder parts recorded in a feature store's ``store.json`` (``[]`` when it records none)."""
    name = meta.get("encoder")
    if not name:
        return []
    extractor = meta.get("extractor") or {}
    options = {k: extractor[k] for k in FEATURE_OPTIONS if k in extractor}
    return parts_of(FrameEncoderSpec(name=str(name), dim=int(meta["dim"]), options=options))


def comparable(spec: FrameEncoderSpec) -> FrameEncoderSpec:
    """``spec`` with only the options that identify its features: its preset's ``identity`` and ``preprocess``.

    What follows from the encoder's name is dropped, e.g. where ``vit-s14-focus`` keeps its cut ONNX file (a
    cache path that differs between machines, for the same features). Encoders c2kd cannot run (a text
    backbone's "frames", imported S3D features) keep every option.
    """
    preset = FRAME_PRESETS.get(spec.name)
    if preset is None or preset.not_extractable or spec.name == CONCAT:
        return spec
    keep = {k: v for k, v in spec.options.items() if k in preset.identity or k == "preprocess"}
    return spec.model_copy(update={"options": keep})


def mismatches(expected: Sequence[FrameEncoderSpec], found: Sequence[FrameEncoderSpec]) -> list[str]:
    """What differs between the parts a model reads and the parts features were made by (``[]``: compatible).

    Parts are compared in order by name, size and the options that identify features (:func:`comparable`), a
    setting of a dict option (``preprocess``) one by one. Feature stores and checkpoints are checked through it.

    Example: ``mismatches([clip_b32], [clip_l14])`` -> ``["model='openai/clip-vit-large-patch14' instead of
    'openai/clip-vit-base-patch32'"]``.
    """
    if len(expected) != len(found):
        return [f"{len(found)} parts instead of {len(expected)}"]
    out = []
    for i, (want, got) in enumerate(zip(map(comparable, expected), map(comparable, found), strict=True)):
        where = f"part {i + 1}: " if len(expected) > 1 else ""
        if want.name != got.name:
            out.append(f"{where}encoder {got.name!r} instead of {want.name!r}")
        if want.dim != got.dim:
            out.append(f"{where}{got.dim}-d instead of {want.dim}-d")
        for key in sorted(want.options.keys() & got.options.keys()):
            wanted, found = want.options[key], got.options[key]
            if isinstance(wanted, Mapping) and isinstance(found, Mapping):  # e.g. preprocess: name each setting
                out.extend(f"{where}{key} {sub}={found.get(sub)!r} instead of {wanted.get(sub)!r}"
                           for sub in sorted(wanted.keys() | found.keys()) if wanted.get(sub) != found.get(sub))
            elif wanted != found:
                out.append(f"{where}{key}={found!r} instead of {wanted!r}")
    return out


def presets_of_size(dim: int) -> list[str]:
    """The presets whose features are ``dim``-d (a shortcut's name rather than the encoder it runs: it names the
    model), for a model that records no frame encoder (made before c2kd recorded them)."""
    return [name for name, preset in FRAME_PRESETS.items() if preset.dim == dim]


def check_frame_encoder(expected: Sequence[FrameEncoderSpec], found: Sequence[FrameEncoderSpec], where: str,
                        fix: str = "") -> None:
    """Refuse features made by other frame encoders than the model's. Either side unknown (``[]``): nothing to
    check. ``where`` names the features (a store folder, a command option); ``fix`` is appended to the message.
    """
    if not expected or not found:
        return
    problems = mismatches(expected, found)
    if problems:
        first = expected[0]
        hint = fix or ("extract the features with the model's frame encoder: `c2kd extract --checkpoint RUN` (or "
                       f"--encoder {first.name}"
                       + (f" --model {first.options['model']}" if "model" in first.options else "") + ")")
        raise ConfigError(f"{where}: features from {describe_parts(found)}, but the model reads "
                          f"{describe_parts(expected)} ({'; '.join(problems)}). {hint}")
