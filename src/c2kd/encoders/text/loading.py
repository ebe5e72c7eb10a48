"""The one place that builds a text backbone by name, and rebuilds a saved one by the kind it recorded.

Building (:func:`build_text_backbone`): a preset is loaded by the loader of its ``kind``, a prefixed name
(``clip:``, ``st:``, ``siglip:``) by its prefix's loader, a folder (or cached hub id) by the loader of its config's
``model_type`` (:data:`~c2kd.encoders.text.base.TEXT_MODEL_TYPES`), anything else mean-pooled (``hf``).

Rebuilding (:func:`rebuild_text_backbone`): a checkpoint's ``text_backbone/`` holds each backbone's record
(``backbone.json``, with its ``kind``), and the class registered under that kind
(:data:`~c2kd.encoders.text.base.TEXT_BACKBONES`) rebuilds it. Checkpoints written before every backbone recorded
its kind are read by :func:`legacy_record`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from c2kd.encoders.text.base import (
    TEXT_BACKBONES,
    TEXT_LOADERS,
    TEXT_MODEL_TYPES,
    TextBackbone,
    TextPreset,
    read_model_type,
    read_record,
)
from c2kd.encoders.text.mix import saved_mix_part_dir
from c2kd.encoders.text.presets import LOADER_PREFIXES, TEXT_PRESETS


def loader_of(name: str) -> tuple[str, str, TextPreset | None]:
    """``(kind, source, preset)`` of a text backbone name: how :func:`build_text_backbone` loads it, without
    loading (a folder's or cached hub id's kind is read from its config)."""
    preset = TEXT_PRESETS.get(name)
    if preset is not None:
        return preset.kind, preset.source, preset
    for prefix, kind in LOADER_PREFIXES.items():
        if name.startswith(prefix):
            return kind, name[len(prefix):], None
    model_type = read_model_type(name)
    found = TEXT_MODEL_TYPES.find(model_type) if model_type else None
    return found or "hf", name, None


def build_text_backbone(name: str) -> TextBackbone:
    """Load a text backbone from a preset name, a prefixed name, a hub model id or a local folder.

    ``clip:SOURCE`` loads the text tower of a CLIP checkpoint, ``siglip:SOURCE`` that of a SigLIP / SigLIP 2 one,
    ``st:SOURCE`` a sentence-transformers model with its pooling and Dense layers; a local CLIP or SigLIP folder (or
    such a hub id whose config is cached) needs no prefix. Any other name is mean-pooled
    (:class:`~c2kd.encoders.text.hf.HFTextBackbone`).
    """
    kind, source, preset = loader_of(name)
    return TEXT_LOADERS.get(kind)(source, name, preset)


def legacy_record(directory: Path) -> dict[str, Any] | None:
    """The record of a backbone saved before every backbone wrote one: a Hugging Face config alone was a
    mean-pooled ``hf`` backbone; packaged engines (``packaged.json``), cached backbones (``cached_backbone.json``)
    and folders with nothing are rebuilt by name (None)."""
    if (directory / "packaged.json").exists() or (directory / "cached_backbone.json").exists():
        return None
    if (directory / "config.json").exists():
        return {"kind": "hf"}
    return None


def rebuild_text_backbone(name: str, architecture_dir: Path) -> TextBackbone:
    """Rebuild a checkpoint's backbone without the hub: by the kind its ``backbone.json`` records (the weights are
    loaded after, from the checkpoint); by name when nothing records how (packaged engines and cached backbones of
    older checkpoints)."""
    record = read_record(architecture_dir) or legacy_record(architecture_dir)
    if record is None:
        return build_text_backbone(name)
    return TEXT_BACKBONES.get(str(record["kind"])).from_architecture(architecture_dir, name, record)


def rebuild_text_backbones(names: list[str], architecture_dir: Path) -> list[TextBackbone]:
    """Rebuild every backbone of a checkpoint's text tower (``text.name``, then the backbone mix ``text.mix``)."""
    return [rebuild_text_backbone(name, saved_mix_part_dir(architecture_dir, i)) for i, name in enumerate(names)]
