"""Text towers (the package ``c2kd.encoders.text``), the video tower, and the frame encoder presets.

The towers are imported on first use (``from c2kd.encoders import TextEncoder``), so that a submodule such as
:mod:`c2kd.encoders.frames` can be read without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

#: exported name -> the module that defines it
_EXPORTS = {
    "GatedProjection": "c2kd.encoders.gated",
    "HFTextBackbone": "c2kd.encoders.text.hf",
    "TextBackbone": "c2kd.encoders.text.base",
    "TextEncoder": "c2kd.encoders.text.tower",
    "TextEncoderConfig": "c2kd.encoders.text.tower",
    "VideoEncoder": "c2kd.encoders.video",
    "VideoEncoderConfig": "c2kd.encoders.video",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'c2kd.encoders' has no attribute {name!r}")
