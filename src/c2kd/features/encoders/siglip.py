"""SigLIP and SigLIP 2 image embeddings as frame features: the image tower of any hub id or local folder through
transformers, with the model's own image processor settings, pooled and L2-normalised.

Fixed-resolution checkpoints (SigLIP, SigLIP 2 such as ``google/siglip2-base-patch16-256``: ``SiglipModel``)
squash each frame to their square size without cropping; NaFlex checkpoints (``google/siglip2-*-naflex``:
``Siglip2Model``) keep its aspect ratio within a patch budget (``max_num_patches``, an option that changes the
features). The embedding is what ``get_image_features`` returns (the attention-pooling head's output), divided by
its norm, as ``SiglipModel`` does before it scores an image against a text.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from c2kd.errors import ConfigError, require
from c2kd.features.encoders.base import FrameEncoder, register_frame_encoder
from c2kd.features.preprocess import ImagePreprocess, NaFlexPreprocess
from c2kd.runtime import resolve_device

#: the model types of the two families: fixed resolution (pixel_values [N, 3, S, S]) and NaFlex (patch sequences)
FIXED_TYPES = ("siglip", "siglip_vision_model")
NAFLEX_TYPES = ("siglip2", "siglip2_vision_model")
#: PIL resampling codes of image processor configs -> c2kd's filter names
RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic", 4: "box"}
DTYPES = ("float32", "float16", "bfloat16")


class SiglipFrameEncoder(FrameEncoder):
    """The image tower of a SigLIP / SigLIP 2 checkpoint (a full model or a vision model folder, or a hub id).

    ``max_num_patches`` (NaFlex only) overrides the processor's patch budget; ``dtype`` defaults to bfloat16 on a
    GPU that supports it, else float16 on CUDA, float32 on the CPU.

    Shape:
        encode: N x [H, W, 3] uint8 RGB -> [N, hidden] float32, unit rows
    """

    name = "siglip"

    def __init__(self, model: str | os.PathLike, max_num_patches: int | None = None, device: str | None = None,
                 batch_size: int = 32, dtype: str | None = None):
        import torch

        transformers = require("transformers", "video", "the SigLIP frame encoder")
        from c2kd.encoders.hub import ensure_hub_source

        local = Path(model).expanduser()
        # a local folder is recorded by its absolute path: stores and checkpoints name the same model alike
        self.model_id = str(local.resolve()) if local.exists() else str(model)
        hub = ensure_hub_source(self.model_id, "SigLIP model (--model)")
        self.device = str(resolve_device(device))
        self.batch_size = int(batch_size)
        self.dtype = _torch_dtype(torch, dtype, self.device)
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()  # the text tower's weights are unused here, by design
        try:
            config = transformers.AutoConfig.from_pretrained(self.model_id, **hub)
            kind = getattr(config, "model_type", None)
            if kind not in FIXED_TYPES + NAFLEX_TYPES:
                raise ConfigError(f"{self.model_id} is a {kind!r} model, not SigLIP or SigLIP 2; pass a SigLIP "
                                  "checkpoint to --model (e.g. google/siglip2-base-patch16-256)")
            self.naflex = kind in NAFLEX_TYPES
            tower = transformers.Siglip2VisionModel if self.naflex else transformers.SiglipVisionModel
            self.model = tower.from_pretrained(self.model_id, dtype=self.dtype, **hub)
            processor = transformers.AutoImageProcessor.from_pretrained(self.model_id, **hub)
        except OSError as exc:
            raise ConfigError(f"cannot load SigLIP model {self.model_id!r} ({exc}). Pass --model with a local "
                              "folder holding the model and its preprocessor_config.json") from exc
        finally:
            transformers.logging.set_verbosity(verbosity)
        vision = self.model.config
        if not getattr(vision, "vision_use_head", True):
            raise ConfigError(f"{self.model_id}: this SigLIP vision tower has no pooling head (vision_use_head "
                              "false), so it gives no image embedding")
        self.model.eval().to(self.device)
        self.dim = int(vision.hidden_size)
        if max_num_patches is not None and not self.naflex:
            raise ConfigError(f"siglip option max_num_patches={max_num_patches}: {self.model_id} reads images of a "
                              "fixed size; the patch budget is an option of NaFlex models (google/siglip2-*-naflex)")
        self.preprocess: ImagePreprocess = preprocess_of(processor, self.model_id, max_num_patches)

    def encode(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        if not self.naflex or len(frames) == 0:
            return super().encode(frames)
        import torch

        assert isinstance(self.preprocess, NaFlexPreprocess)
        out = []
        for start in range(0, len(frames), self.batch_size):
            pixels, mask, shapes = self.preprocess.patches(frames[start: start + self.batch_size])
            with torch.inference_mode():
                pooled = self.model(pixel_values=torch.from_numpy(pixels).to(self.device, self.dtype),
                                    pixel_attention_mask=torch.from_numpy(mask).to(self.device),
                                    spatial_shapes=torch.from_numpy(shapes).to(self.device)).pooler_output
                out.append(_unit_rows(pooled))
        return np.concatenate(out)

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            pooled = self.model(pixel_values=torch.from_numpy(pixels).to(self.device, self.dtype)).pooler_output
            return _unit_rows(pooled)

    def describe(self) -> dict[str, Any]:
        record = {**super().describe(), "model": self.model_id}
        if isinstance(self.preprocess, NaFlexPreprocess):
            record["max_num_patches"] = self.preprocess.max_patches
        return record


def _unit_rows(pooled: Any) -> np.ndarray:
    """Shape: pooled [N, D] tensor (any dtype) -> [N, D] float32 numpy, each row divided by its L2 norm."""
    import torch

    x = pooled.float()
    return torch.nn.functional.normalize(x, dim=-1).cpu().numpy()


def _torch_dtype(torch: Any, name: str | None, device: str) -> Any:
    if name is not None:
        if name not in DTYPES:
            raise ConfigError(f"siglip option dtype={name!r}: use one of {', '.join(DTYPES)}")
        return getattr(torch, name)
    if not device.startswith("cuda"):
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def preprocess_of(processor: Any, model: str, max_num_patches: int | None = None) -> ImagePreprocess:
    """c2kd's preprocessing equal to a SigLIP / SigLIP 2 image processor's: squash to its square size (SigLIP), or
    resize within its patch budget (NaFlex); its resample filter, mean and std; pixels scaled by 1/255.

    Settings c2kd cannot reproduce (a crop, another rescale factor, a non-square size, LANCZOS) are refused.
    """
    where = f"{model}: image processor"
    resample = RESAMPLE.get(int(getattr(processor, "resample", -1)))
    if resample is None:
        raise ConfigError(f"{where} resamples with PIL filter {getattr(processor, 'resample', None)}, which c2kd does not "
                          f"reproduce; supported: {sorted(RESAMPLE.values())}")
    if not getattr(processor, "do_resize", None):
        raise ConfigError(f"{where} does not resize; c2kd's SigLIP encoder needs the model's input size")
    if not getattr(processor, "do_rescale", None) or abs(float(getattr(processor, "rescale_factor", 0)) - 1 / 255) > 1e-12:
        raise ConfigError(f"{where} does not scale pixels by 1/255; c2kd reproduces only that")
    if getattr(processor, "do_center_crop", None):
        raise ConfigError(f"{where} crops; SigLIP models squash the whole frame")
    mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    if getattr(processor, "do_normalize", None):
        mean, std = _three(getattr(processor, "image_mean", None), where), _three(getattr(processor, "image_std", None), where)
    patch = getattr(processor, "patch_size", None)
    budget = getattr(processor, "max_num_patches", None)
    if patch is not None and budget is not None:  # a NaFlex processor
        return NaFlexPreprocess(size=0, resample=resample, mean=mean, std=std, patch_size=int(patch),
                                max_patches=int(max_num_patches or budget))
    size = getattr(processor, "size", None)
    height, width = (size.get("height"), size.get("width")) if isinstance(size, dict) else (
        getattr(size, "height", None), getattr(size, "width", None))
    if height is None or height != width:
        raise ConfigError(f"{where} resizes to {size}; c2kd's SigLIP encoder reads square sizes (height = width)")
    return ImagePreprocess(size=int(height), mode="stretch", resample=resample, mean=mean, std=std)


def _three(values: Any, where: str) -> tuple[float, float, float]:
    values = [float(v) for v in (values if isinstance(values, list | tuple) else [values] * 3)]
    if len(values) != 3:
        raise ConfigError(f"{where}: expected 3 mean/std values (R, G, B), got {values}")
    return values[0], values[1], values[2]


@register_frame_encoder("siglip")
def _build_siglip(model: str | None = None, max_num_patches: int | None = None, device: str | None = None,
                  batch_size: int = 32, dtype: str | None = None) -> FrameEncoder:
    if model is None:
        raise ConfigError("the siglip frame encoder needs --model: a hub id (google/siglip2-base-patch16-256, "
                          "google/siglip2-so400m-patch14-384, google/siglip2-base-patch16-naflex, "
                          "google/siglip-base-patch16-256-multilingual, ...) or a local model folder; or use one of "
                          "the siglip presets (see `c2kd extract --help`)")
    if max_num_patches is not None and int(max_num_patches) < 1:
        raise ConfigError(f"siglip option max_num_patches={max_num_patches}: give a positive number of patches")
    return SiglipFrameEncoder(model, max_num_patches=None if max_num_patches is None else int(max_num_patches),
                              device=device, batch_size=int(batch_size), dtype=dtype)
