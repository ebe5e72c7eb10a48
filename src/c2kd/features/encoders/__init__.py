"""Frame encoders, one module per family: CLIP (``clip``), any ONNX model (``onnx``), the packaged ViT-S/14
(``focus``), SigLIP / SigLIP 2 (``siglip``), several side by side (``concat``); the interface and registry in
``base``.

Example:
    >>> enc = build_frame_encoder("vit-s14-focus")  # doctest: +SKIP
    >>> enc.encode([frame_rgb_uint8]).shape  # doctest: +SKIP
    (1, 384)
"""

from c2kd.features.encoders.base import (
    FRAME_ENCODERS,
    FrameEncoder,
    build_frame_encoder,
    command_line,
    default_cache_dir,
    encoder_options,
    encoder_spec,
    frame_encoder_names,
    recorded_encoder,
    register_frame_encoder,
)

__all__ = ["FRAME_ENCODERS", "FrameEncoder", "build_frame_encoder", "command_line", "default_cache_dir",
           "encoder_options", "encoder_spec", "frame_encoder_names", "recorded_encoder", "register_frame_encoder"]
