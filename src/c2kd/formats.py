"""Checkpoint formats: each kind of model folder registers how it is recognised, loaded and fingerprinted.

A checkpoint folder records its format in ``checkpoint.json`` (``{"format": NAME, "version": 1}``); folders
written before that file existed are recognised by their format's marker file. A run folder (``c2kd train
--out``) stands for its ``best/`` checkpoint, else its ``last/``. :func:`load_model` opens any of them as a
:class:`~c2kd.retrieval.RetrievalModel`, whatever its format.

A new format is one class beside the model it holds: a :class:`CheckpointFormat` subclass decorated with
:func:`register_format`, its module named in :data:`FORMATS`' modules.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from c2kd.errors import CheckpointError
from c2kd.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from c2kd.encoders.frames import FrameEncoderSpec
    from c2kd.retrieval import RetrievalModel

FORMAT_FILE = "checkpoint.json"
#: What marks a folder as a checkpoint c2kd wrote (older checkpoints have no ``checkpoint.json``): an output
#: folder holding one of these may be replaced by another checkpoint (`c2kd.io.check_replaceable`).
CHECKPOINT_MARKER = (FORMAT_FILE, "model.safetensors", "fusion.json")
BEST_DIR = "best"
#: the best epoch by the monitored metric alone, the floor ignored (the paper's protocol for comparing methods)
BEST_AVERAGE_DIR = "best-average"
LAST_DIR = "last"


class CheckpointFormat(ABC):
    """One kind of checkpoint folder."""

    #: recorded in ``checkpoint.json``
    name: ClassVar[str]
    #: a file only folders of this format hold (to read folders written before ``checkpoint.json``)
    marker: ClassVar[str]
    #: what such a folder holds, for messages
    title: ClassVar[str]

    @abstractmethod
    def load(self, directory: Path, device: str | torch.device = "cpu",
             persist_cache: bool = True) -> RetrievalModel:
        """The model of the folder, on ``device``; ``persist_cache=False``: a frozen text backbone's embedding
        cache is only read."""

    @abstractmethod
    def frame_encoder(self, directory: Path) -> list[FrameEncoderSpec]:
        """The frame encoder parts the model reads (``[]``: not recorded), read without loading the weights."""

    @abstractmethod
    def fingerprint(self, directory: Path) -> str:
        """A cheap identity of the weights (16 hex digits): another fingerprint means another embedding space."""

    @abstractmethod
    def save(self, model: RetrievalModel, directory: Path) -> Path:
        """Write ``model`` (of this format's model class) as a folder of this format, in one atomic rename."""

    def verify(self, directory: Path) -> None:  # noqa: B027 - optional: a format without checksums checks nothing
        """Check that the folder's files still hold what was saved (checksums recorded at saving), raising
        :class:`~c2kd.errors.CheckpointError` ("checkpoint damaged: ...") when not. By default nothing is checked."""

    def instead(self, directory: Path) -> str:
        """What to give instead where one plain model is needed (see :func:`require_format`)."""
        return "give a checkpoint written by `c2kd train`"


#: every checkpoint format, by the name recorded in ``checkpoint.json`` (its modules imported on the first lookup)
FORMATS = Registry[CheckpointFormat]("checkpoint format", modules=("c2kd.checkpoint", "c2kd.fused",
                                                                      "c2kd.authors.checkpoint"))


def register_format(cls: type[CheckpointFormat]) -> type[CheckpointFormat]:
    """Class decorator: make a checkpoint format known by its ``name``."""
    FORMATS.add(cls.name, cls())
    return cls


def known_formats() -> dict[str, CheckpointFormat]:
    """Every registered format, by name."""
    return dict(FORMATS.items())


class Checkpointed:
    """Mixed into a model class that a checkpoint format saves: ``model.save(DIR)`` and ``model.fingerprint()``.

    ``checkpoint_format`` names the format; the fingerprint is the one of the folder the model was loaded from
    (:func:`load_model`) or last saved to, so an index built with it knows the model again.
    """

    checkpoint_format: ClassVar[str]
    _fingerprint: str | None = None

    def fingerprint(self) -> str:
        """The identity of the model's weights (16 hex digits; see :meth:`CheckpointFormat.fingerprint`)."""
        if self._fingerprint is None:
            raise CheckpointError("this model was made in memory and has no checkpoint yet: save it with "
                                  "model.save(DIR) (or load it with c2kd.formats.load_model) first")
        return self._fingerprint

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the model as a checkpoint folder that :func:`load_model` reads back (an old folder is replaced)."""
        found = FORMATS.get(self.checkpoint_format)
        path = found.save(cast("RetrievalModel", self), Path(directory))
        self._fingerprint = found.fingerprint(path)
        return path


def record_format(directory: str | os.PathLike, name: str) -> Path:
    """Write ``checkpoint.json`` into a checkpoint folder being written (inside its atomic rename)."""
    path = Path(directory) / FORMAT_FILE
    path.write_text(json.dumps({"format": name, "version": 1}) + "\n")
    return path


def folder_format(directory: Path) -> CheckpointFormat | None:
    """The format of a checkpoint folder (None: not a checkpoint folder)."""
    formats = known_formats()
    recorded = directory / FORMAT_FILE
    if recorded.is_file():
        try:
            name = json.loads(recorded.read_text())["format"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{recorded} cannot be read ({exc.__class__.__name__}); copy the checkpoint "
                                  "again") from exc
        if name not in formats:
            raise CheckpointError(f"{recorded}: format {name!r} is not one this version of c2kd reads "
                                  f"({', '.join(formats)}); upgrade c2kd")
        return formats[name]
    return next((f for f in formats.values() if (directory / f.marker).is_file()), None)


def find_checkpoint(path: str | os.PathLike) -> tuple[Path, CheckpointFormat]:
    """The checkpoint folder ``path`` stands for (itself, or a run folder's ``best/``, else ``last/``) and its
    format."""
    p = Path(path)
    for directory in (p, p / BEST_DIR, p / LAST_DIR):
        found = folder_format(directory)
        if found is not None:
            return directory, found
    raise CheckpointError(f"no checkpoint in {p} (nor in {p}/{BEST_DIR} or {p}/{LAST_DIR}): give a checkpoint "
                          "folder written by `c2kd train`, `c2kd model aligned` or `c2kd model fuse`")


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint folder ``path`` stands for (see :func:`find_checkpoint`)."""
    return find_checkpoint(path)[0]


def require_format(path: str | os.PathLike, name: str, use: str) -> Path:
    """The checkpoint folder of ``path``, refused unless it has format ``name`` (``use``: what the caller does
    with it, for the message)."""
    directory, found = find_checkpoint(path)
    if found.name != name:
        raise CheckpointError(f"{directory} is {found.title}, which {use}; {found.instead(directory)}")
    return directory


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu",
               persist_cache: bool = True) -> RetrievalModel:
    """The model of a checkpoint or run folder of any format, for evaluation and search."""
    directory, found = find_checkpoint(path)
    model = found.load(directory, device=device, persist_cache=persist_cache)
    if isinstance(model, Checkpointed):
        model._fingerprint = found.fingerprint(directory)
    return model


def checkpoint_frame_encoder(path: str | os.PathLike) -> list[FrameEncoderSpec]:
    """The frame encoder parts a checkpoint's model reads (``[]`` for checkpoints that record none)."""
    directory, found = find_checkpoint(path)
    return found.frame_encoder(directory)


def checkpoint_fingerprint(path: str | os.PathLike) -> str:
    """A cheap identity of a checkpoint's weights (see :meth:`CheckpointFormat.fingerprint`)."""
    directory, found = find_checkpoint(path)
    return found.fingerprint(directory)


def verify_checkpoint(path: str | os.PathLike) -> None:
    """Raise :class:`~c2kd.errors.CheckpointError` when a checkpoint's files no longer hold what was saved
    (see :meth:`CheckpointFormat.verify`)."""
    directory, found = find_checkpoint(path)
    found.verify(directory)
