"""What every text backbone is: the interface, the preset type, and the two registries by kind.

A backbone turns raw strings into one vector per string in two steps, so that the expensive CPU work
(tokenisation) happens once per caption and per encoder, not once per item and per teacher:

- ``prepare(texts)``: strings -> model inputs (cached per string);
- ``forward(inputs)``: model inputs -> [B, H] sentence vectors.

Two registries, one entry per family module:

- :data:`TEXT_LOADERS`: how a *name* loads (a preset's ``kind``, a prefix such as ``clip:``): ``(source, name,
  preset) -> TextBackbone``;
- :data:`TEXT_BACKBONES`: which class rebuilds a *saved* backbone: every backbone records its ``kind`` in
  ``backbone.json`` (:func:`write_record`) beside the files it needs, and ``cls.from_architecture(directory, name,
  record)`` rebuilds it without the hub (its weights are loaded after, from the checkpoint).

:data:`TEXT_MODEL_TYPES` maps a Hugging Face ``model_type`` to the loader of a folder given without a prefix
(a CLIP folder reads as CLIP's text tower, a SigLIP folder as SigLIP's).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from torch import Tensor, nn

from c2kd.registry import Registry

#: the record of a saved backbone (``text_backbone/backbone.json``): its ``kind`` and what rebuilds it
BACKBONE_FILE = "backbone.json"

#: the family modules, each registering its loaders, its saved kinds and the model types it reads
FAMILY_MODULES = ("c2kd.encoders.text.hf", "c2kd.encoders.text.packaged", "c2kd.encoders.text.clip",
                  "c2kd.encoders.text.sentence_transformers", "c2kd.encoders.text.siglip")


@dataclass(frozen=True)
class TextPreset:
    """A named text backbone. ``kind`` names its loader in :data:`TEXT_LOADERS`.

    ``hf``: a hub id or local path, mean-pooled; ``packaged-e5`` / ``packaged-use``: the numpy engines of
    ``c2kd.encoders.text.packaged``; ``hf-packaged``: a Hugging Face folder ``model/`` inside the Python package
    named by ``source``; ``clip-text``: the text tower of a CLIP checkpoint; ``sentence-transformers``: a model in
    sentence-transformers layout with its pooling and Dense layers; ``siglip-text``: the text tower of a SigLIP or
    SigLIP 2 checkpoint.
    """

    source: str
    kind: str = "hf"
    description: str = ""
    #: the role of an engine with roles (e5: ``query`` for captions and search text, ``passage`` for documents)
    role: Literal["query", "passage"] = "query"
    #: the frame encoder whose space the text tower embeds into (``c2kd model aligned --frame-encoder``), if any
    aligned_frames: str = ""


class TextBackbone(nn.Module):
    """Interface of every text backbone: ``prepare`` strings on the CPU, ``forward`` them to [B, dim].

    ``kind`` is recorded when it is saved (:meth:`save_architecture`) and names the class in
    :data:`TEXT_BACKBONES` that rebuilds it (:meth:`from_architecture`).
    """

    name: str
    dim: int
    #: whether gradients can flow into the backbone at all (packaged numpy engines cannot be fine-tuned)
    supports_training: bool = True
    #: the saved kind (empty: not saved by kind; such a backbone is rebuilt by its name)
    kind: ClassVar[str] = ""

    def prepare(self, texts: Sequence[str], max_tokens: int) -> dict[str, Tensor]:
        raise NotImplementedError

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def record(self) -> dict[str, Any]:
        """What ``backbone.json`` says of this backbone: its ``kind``, ``name``, ``dim`` and family settings."""
        return {"kind": self.kind, "name": self.name, "dim": int(self.dim)}

    def save_architecture(self, directory: Path) -> None:
        """Write what is needed to rebuild this backbone without the hub (weights go in the checkpoint), and its
        record."""
        write_record(directory, self.record())

    @classmethod
    def from_architecture(cls, directory: Path, name: str, record: dict[str, Any]) -> TextBackbone:
        """Rebuild from a checkpoint's ``text_backbone/`` folder (the weights are loaded after)."""
        raise NotImplementedError(f"{cls.__name__} cannot be rebuilt from a saved architecture")


def write_record(directory: Path, record: dict[str, Any]) -> None:
    """Write ``backbone.json`` into ``directory`` (created when missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / BACKBONE_FILE).write_text(json.dumps(record, indent=2) + "\n")


def read_record(directory: Path) -> dict[str, Any] | None:
    """The ``backbone.json`` of a saved backbone (None: the folder has none)."""
    path = directory / BACKBONE_FILE
    if not path.is_file():
        return None
    from c2kd.errors import CheckpointError

    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); copy the checkpoint again") from None
    if not isinstance(record, dict) or not record.get("kind"):
        raise CheckpointError(f"{path} names no backbone kind; copy the checkpoint again")
    return record


class TextLoader(Protocol):
    """Loads one kind of text backbone from ``source`` (a hub id, folder or package), named ``name`` (the preset
    name, or the name as given); ``preset`` is the named preset, if the name is one."""

    def __call__(self, source: str, name: str, preset: TextPreset | None) -> TextBackbone: ...


#: how each kind of text backbone is loaded by name (a :class:`TextPreset`'s ``kind``): a loader registers with
#: ``@TEXT_LOADERS.register(kind)`` beside the backbone it builds; its module is imported on the first lookup,
#: its heavy library (transformers, a packaged engine) only when it loads
TEXT_LOADERS = Registry[TextLoader](
    "text backbone kind", modules=FAMILY_MODULES,
    hint="the kind of a preset in c2kd.encoders.text.presets.TEXT_PRESETS",
)

#: which class rebuilds a saved backbone, by the ``kind`` its ``backbone.json`` records (:func:`saved_kind`)
TEXT_BACKBONES = Registry[type[TextBackbone]](
    "saved text backbone kind", modules=(*FAMILY_MODULES, "c2kd.encoders.text.cache"),
    hint="the checkpoint was written by a newer c2kd; upgrade c2kd",
)

#: the loader kind of a Hugging Face folder (or cached hub id) given without a prefix, by its config's
#: ``model_type`` (others: ``hf``, mean-pooled)
TEXT_MODEL_TYPES = Registry[str]("text model type", modules=FAMILY_MODULES)

B = TypeVar("B", bound=type[TextBackbone])


def saved_kind(cls: B) -> B:
    """Class decorator: register a backbone class in :data:`TEXT_BACKBONES` under its ``kind``."""
    if not cls.kind:
        raise ValueError(f"{cls.__name__} has no kind to be saved under")
    TEXT_BACKBONES.add(cls.kind, cls)
    return cls


def read_model_type(source: str | Path) -> str | None:
    """The ``model_type`` of a local Hugging Face folder, or of a hub id whose config is in the local cache (never a
    download); None when there is no such config."""
    local = Path(source).expanduser() / "config.json"
    config = local if local.is_file() else _cached_config(str(source))
    if config is None or not config.is_file():
        return None
    try:
        found = json.loads(config.read_text()).get("model_type")
    except (OSError, json.JSONDecodeError):
        return None
    return str(found) if found else None


def _cached_config(repo_id: str) -> Path | None:
    from c2kd.encoders.hub import looks_like_path

    if looks_like_path(repo_id):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - not a valid hub id
        return None
    return Path(found) if isinstance(found, str) else None


def quiet_transformers() -> None:
    """Silence transformers' warnings and progress bars (e.g. a full checkpoint's unused vision weights)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

