"""The ``c2kd-authors`` checkpoint format: an imported authors' model as a c2kd checkpoint folder.

::

    checkpoint.json          {"format": "c2kd-authors", "version": 1}
    authors.json             the architecture (AuthorsArchitecture) and where the model came from
    model.safetensors        the weights, under this package's names (+ model.safetensors.sha256)
    text_backbone/           the text encoder's Hugging Face config and tokenizer (no hub needed to load)

:func:`c2kd.formats.load_model` opens it like any other checkpoint, so ``evaluate``, ``index build``,
``search``, ``serve`` and ``moments`` read it; training cannot start from it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, cast

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from c2kd.authors.model import AuthorsArchitecture, AuthorsModel
from c2kd.checkpoint import WEIGHTS_FILE, check_weights, load_weights, save_weights
from c2kd.encoders.frames import FrameEncoderSpec
from c2kd.errors import CheckpointError, validation_problems
from c2kd.formats import CHECKPOINT_MARKER, CheckpointFormat, record_format, register_format
from c2kd.io import atomic_path
from c2kd.retrieval import RetrievalModel

FORMAT = AuthorsModel.checkpoint_format
RECORD_FILE = "authors.json"
BACKBONE_DIR = "text_backbone"


class AuthorsRecord(BaseModel):
    """``authors.json``: the architecture and the provenance of an imported model."""

    model_config = ConfigDict(extra="forbid")

    format: str = FORMAT
    version: int = 1
    architecture: AuthorsArchitecture
    #: the authors' checkpoint file, its SHA-256, its epoch and step, the text backbone's source, the keys left
    #: out (modules that compute neither embedding), ...
    source: dict[str, Any] = Field(default_factory=dict)


def read_record(directory: Path) -> AuthorsRecord:
    path = directory / RECORD_FILE
    try:
        return AuthorsRecord.model_validate_json(path.read_text())
    except (OSError, ValidationError, ValueError) as exc:
        problem = validation_problems(exc) if isinstance(exc, ValidationError) else exc.__class__.__name__
        raise CheckpointError(f"{path} cannot be read ({problem}); import the authors' checkpoint again with "
                              "`c2kd model import-authors`") from exc


def build_text_encoder(config: Any) -> torch.nn.Module:
    """A Hugging Face encoder with random weights from its config (the checkpoint supplies the weights)."""
    from transformers import AutoModel

    return AutoModel.from_config(config)


def load_authors_folder(directory: Path, device: str | torch.device = "cpu") -> AuthorsModel:
    """The model of a ``c2kd-authors`` folder, its weights loaded strictly."""
    from transformers import AutoConfig, AutoTokenizer

    record = read_record(directory)
    backbone = directory / BACKBONE_DIR
    try:
        config = AutoConfig.from_pretrained(backbone, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(backbone, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{backbone} cannot be read ({exc}); import the authors' checkpoint again") from exc
    model = AuthorsModel(record.architecture, build_text_encoder(config), tokenizer)
    try:
        model.load_state_dict(load_weights(directory), strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{directory / WEIGHTS_FILE} does not match {directory / RECORD_FILE}: {exc}") from exc
    return model.eval().to(device)


def save_authors_folder(model: AuthorsModel, directory: Path, source: dict[str, Any] | None = None,
                        overwrite: bool = False) -> Path:
    """Write ``model`` as a ``c2kd-authors`` folder in one atomic rename (``source``: provenance to record). A
    folder there is replaced only when it holds a checkpoint, or with ``overwrite``."""
    if source is None and (directory / RECORD_FILE).is_file():
        source = read_record(directory).source
    with atomic_path(directory, CHECKPOINT_MARKER, overwrite) as tmp:
        tmp.mkdir(parents=True)
        save_weights(tmp, model.state_dict())
        cast(Any, model.text_encoder).config.save_pretrained(tmp / BACKBONE_DIR)
        model.tokenizer.save_pretrained(tmp / BACKBONE_DIR)
        record = AuthorsRecord(architecture=model.architecture, source=source or {})
        (tmp / RECORD_FILE).write_text(record.model_dump_json(indent=2) + "\n")
        record_format(tmp, FORMAT)
    return directory


@register_format
class AuthorsFormat(CheckpointFormat):
    """A model of the C2KD authors, imported from their checkpoint (this module's layout)."""

    name = FORMAT
    marker = RECORD_FILE
    title = "a model imported from the C2KD authors' checkpoint"

    def load(self, directory: Path, device: str | torch.device = "cpu", persist_cache: bool = True) -> AuthorsModel:
        return load_authors_folder(directory, device=device)

    def frame_encoder(self, directory: Path) -> list[FrameEncoderSpec]:
        spec = read_record(directory).architecture.frame_encoder
        return [spec] if spec is not None else []

    def fingerprint(self, directory: Path) -> str:
        """SHA-256 of ``authors.json`` and of the recorded SHA-256 of the weights."""
        digest = hashlib.sha256((directory / RECORD_FILE).read_bytes())
        digest.update((directory / (WEIGHTS_FILE + ".sha256")).read_bytes())
        return digest.hexdigest()[:16]

    def verify(self, directory: Path) -> None:
        check_weights(directory)

    def instead(self, directory: Path) -> str:
        return ("an imported authors' model is for evaluation and search; train a c2kd model with `c2kd train` "
                "to fine-tune or distil")

    def save(self, model: RetrievalModel, directory: Path) -> Path:
        if not isinstance(model, AuthorsModel):
            raise TypeError(f"the {FORMAT} format saves AuthorsModel models, not {type(model).__name__}")
        return save_authors_folder(model, directory)


def describe(directory: Path) -> str:
    """One line on an imported folder: the authors' class, its text backbone and its frames."""
    record = read_record(directory)
    a = record.architecture
    frames = a.frame_encoder.describe() if a.frame_encoder else f"{a.feature_dim}-d frames"
    return (f"{a.arch} (text {record.source.get('text_backbone', '?')}, {a.text_hidden}-d; fusion {a.depth} blocks "
            f"x {a.heads} heads at {a.width}; reads {frames}) -> {a.embed_dim}-d; "
            f"epoch {json.dumps(record.source.get('epoch'))}")
