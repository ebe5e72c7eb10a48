"""Text and video towers, the dual encoder, and the registry of named backbones."""

from c2kd.encoders.gated import GatedProjection
from c2kd.encoders.text import HFTextBackbone, TextBackbone, TextEncoder, TextEncoderConfig
from c2kd.encoders.video import VideoEncoder, VideoEncoderConfig

__all__ = [
    "GatedProjection",
    "HFTextBackbone",
    "TextBackbone",
    "TextEncoder",
    "TextEncoderConfig",
    "VideoEncoder",
    "VideoEncoderConfig",
]
