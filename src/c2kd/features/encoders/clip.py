"""CLIP image embeddings as frame features (the paper's): a CLIP vision tower + projection through transformers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from c2kd.errors import ConfigError, require
from c2kd.features.encoders.base import FrameEncoder, register_frame_encoder
from c2kd.features.preprocess import CLIP_MEAN, CLIP_STD, ImagePreprocess
from c2kd.runtime import resolve_device

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"

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
        except ConfigError as exc:  # the packaged vit-s14-focus needs no download, but no text search reads it
            raise ConfigError(f"{exc}. (The packaged --encoder vit-s14-focus works offline, but its features are "
                              "not text-aligned: they train a model, no text search reads them; see README, "
                              "'Search your own videos')") from None
        self.device = str(resolve_device(device))
        self.batch_size = int(batch_size)
        torch_dtype = getattr(torch, dtype) if dtype else (torch.float16 if self.device.startswith("cuda")
                                                           else torch.float32)
        try:
            self.model = _load_clip_vision(transformers, self.model_id, torch_dtype, **hub)
        except OSError as exc:
            raise ConfigError(f"cannot load CLIP model {self.model_id!r} ({exc}). Pass --model with a local "
                              "CLIP checkpoint directory (`c2kd model download mclip-vit-b32 --out DIR` fetches "
                              "one where the hub is reachable)") from exc
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

