"""A fused model: several trained or aligned dual encoders searched as one, saved as one checkpoint folder.

``score(text, video) = sum_m w_m cos_m(text, video) / sum_m w_m``, a :class:`~c2kd.late_fusion.LateFusion` of
its members: an index, ``c2kd search``, ``serve`` and ``moments`` use a fused model like any other.

Members that read the same frame encoder all read the same frames. Members that read different ones (the
Multi30K proxy's C2KD student reads USE frames, the e5 pair e5 passages of the same descriptions) read their
own slice of concatenated features (a ``concat`` frame spec: ``c2kd extract --checkpoint FUSED`` runs every
part's encoder on the same frames, ``c2kd data concat-features`` joins stores made apart).

A fused checkpoint folder (the ``c2kd-fused-model`` format of :mod:`c2kd.formats`)::

    checkpoint.json       its format (folders written before it existed are known by fusion.json)
    fusion.json           members (folder, weight, feature slice), the frame encoder, how the weights were chosen
    members/0, 1, ...     copies of the member checkpoints (each loads on its own with ``c2kd.checkpoint``)
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from c2kd.checkpoint import load_checkpoint, read_model_config, resolve_cache_dir
from c2kd.encoders.frames import FrameEncoderSpec, joined, mismatches, parts_of
from c2kd.errors import CheckpointError, ConfigError
from c2kd.formats import (
    CHECKPOINT_MARKER,
    CheckpointFormat,
    checkpoint_fingerprint,
    folder_format,
    record_format,
    register_format,
    resolve_checkpoint,
    verify_checkpoint,
)
from c2kd.io import atomic_path, write_text
from c2kd.late_fusion import LateFusion, checked_weights
from c2kd.retrieval import RetrievalModel

FUSION_FILE = "fusion.json"
FORMAT = LateFusion.checkpoint_format
MEMBERS_DIR = "members"


class FusedMember(BaseModel):
    """One member of a fused checkpoint: its folder (relative to the fused one), weight, and frame columns."""

    model_config = ConfigDict(extra="forbid")

    path: str
    weight: float = Field(gt=0)
    #: the columns ``[start, stop)`` of the fused frame features this member reads
    features: tuple[int, int]
    #: where the member was copied from (for people)
    source: str = ""


class FusionRecord(BaseModel):
    """``fusion.json``: what a fused checkpoint is made of."""

    model_config = ConfigDict(extra="forbid")

    format: str = FORMAT
    version: int = 1
    members: list[FusedMember] = Field(min_length=1)
    #: the frame encoder the fused model reads (``concat`` of the members' when they differ)
    frame_encoder: FrameEncoderSpec | None = None
    #: the split the weights were chosen on (None: given by hand) and the value of every candidate there
    chosen_on: str | None = None
    validation: list[dict[str, Any]] = Field(default_factory=list)


def fused_frames(specs: Sequence[FrameEncoderSpec | None],
                 dims: Sequence[int]) -> tuple[FrameEncoderSpec | None, list[tuple[int, int]]]:
    """The frame encoder of a fused model and each member's feature columns.

    Members reading one encoder share its frames (every slice is all columns); otherwise the fused model reads
    their features side by side (``concat``), member ``m`` its own columns. ``dims``: each member's feature size.
    """
    first, dim = specs[0], dims[0]
    shared = all(d == dim for d in dims) and (
        all(s is None for s in specs)
        or (first is not None and all(s is not None and not mismatches([first], [s]) for s in specs)))
    if shared:
        return first, [(0, dim)] * len(specs)
    unknown = [m for m, s in enumerate(specs) if s is None]
    if unknown:
        raise ConfigError(f"member {unknown[0] + 1} records no frame encoder, and the members read features of "
                          "different sizes or encoders: retrain or re-create it with this version of c2kd, so "
                          "the fused model knows which features each member reads")
    bounds = np.cumsum([0, *dims]).tolist()
    return joined([s for s in specs if s is not None]), list(itertools.pairwise(bounds))


@register_format
class FusedFormat(CheckpointFormat):
    """A fused checkpoint folder (this module's layout)."""

    name = FORMAT
    marker = FUSION_FILE
    title = "a fused model (several checkpoints searched as one)"

    def load(self, directory: Path, device: str | torch.device = "cpu",
             persist_cache: bool = True) -> LateFusion:
        return load_fused_checkpoint(directory, device=device, persist_cache=persist_cache)

    def frame_encoder(self, directory: Path) -> list[FrameEncoderSpec]:
        return parts_of(read_fusion(directory).frame_encoder)

    def fingerprint(self, directory: Path) -> str:
        """SHA-256 of ``fusion.json`` (members, weights) and of its members' fingerprints."""
        digest = hashlib.sha256((directory / FUSION_FILE).read_bytes())
        for member in read_fusion(directory).members:
            digest.update(checkpoint_fingerprint(directory / member.path).encode())
        return digest.hexdigest()[:16]

    def verify(self, directory: Path) -> None:
        for member in read_fusion(directory).members:
            verify_checkpoint(directory / member.path)

    def instead(self, directory: Path) -> str:
        return f"give one of its members ({directory / MEMBERS_DIR}/0, ...)"

    def save(self, model: RetrievalModel, directory: Path) -> Path:
        """Each member saved in its own format under ``members/``, beside ``fusion.json``."""
        if not isinstance(model, LateFusion):
            raise TypeError(f"the fused format saves LateFusion models, not {type(model).__name__}")
        with atomic_path(directory, CHECKPOINT_MARKER) as tmp:
            (tmp / MEMBERS_DIR).mkdir(parents=True)
            members = []
            for m, (member, weight, features) in enumerate(zip(model.members, model.weights, model.features,
                                                               strict=True)):
                member.save(tmp / MEMBERS_DIR / str(m))
                members.append(FusedMember(path=f"{MEMBERS_DIR}/{m}", weight=weight, features=features))
            _write_fusion(tmp, FusionRecord(members=members, frame_encoder=joined(model.frame_encoder)))
        return directory


def is_fused_checkpoint(path: str | os.PathLike) -> bool:
    found = folder_format(Path(path))
    return found is not None and found.name == FORMAT


def read_fusion(directory: str | os.PathLike) -> FusionRecord:
    """The validated ``fusion.json`` of a fused checkpoint folder."""
    from pydantic import ValidationError

    from c2kd.errors import validation_problems

    path = Path(directory) / FUSION_FILE
    try:
        record = FusionRecord.model_validate_json(path.read_text())
    except ValidationError as exc:
        raise CheckpointError(f"{path} cannot be read ({validation_problems(exc)}); fuse the models again "
                              "with `c2kd model fuse`") from exc
    if record.format != FORMAT:
        raise CheckpointError(f"{path}: not a c2kd fused model (format {record.format!r})")
    return record


def load_fused_checkpoint(directory: str | os.PathLike, device: str | torch.device = "cpu",
                          persist_cache: bool = True) -> LateFusion:
    """Load every member of a fused checkpoint folder (see :func:`save_fused_checkpoint`)."""
    record = read_fusion(directory)
    members = [load_checkpoint(Path(directory) / m.path, device=device, persist_cache=persist_cache)[0]
               for m in record.members]
    for member, entry in zip(members, record.members, strict=True):
        start, stop = entry.features
        if stop - start != member.feature_dim:
            raise CheckpointError(f"{Path(directory) / FUSION_FILE}: member {entry.path} reads "
                                  f"{member.feature_dim}-d frames, not columns {start}:{stop}")
    return LateFusion(members, [m.weight for m in record.members], [m.features for m in record.members])


def save_fused_checkpoint(out: str | os.PathLike, checkpoints: Sequence[str | os.PathLike],
                          weights: Sequence[float], chosen_on: str | None = None,
                          validation: Sequence[dict[str, Any]] = (), overwrite: bool = False) -> Path:
    """Copy ``checkpoints`` (checkpoint or run folders) into one fused checkpoint folder, in one atomic rename
    (``overwrite``: replace a folder that is not a checkpoint, see :func:`c2kd.io.atomic_path`).

    Members of weight 0 are left out. A member's frozen-text cache keeps being read where it is (its
    ``model.text.cache_dir`` is written as an absolute path into the copy).
    """
    import yaml

    from c2kd.checkpoint import CONFIG_FILE, RESUME_STATE_FILE
    weights = checked_weights(weights, len(checkpoints))
    kept = [(resolve_checkpoint(c), w) for c, w in zip(checkpoints, weights, strict=True) if w > 0]
    for folder, _ in kept:
        if is_fused_checkpoint(folder):
            raise ConfigError(f"{folder} is itself a fused model: fuse its members ({folder / MEMBERS_DIR}/...) "
                              "with the others instead")
    for folder, _ in kept:  # a member is copied as it is: damage found now, not by the first search
        verify_checkpoint(folder)
    configs = [read_model_config(folder) for folder, _ in kept]
    spec, slices = fused_frames([c.frame_encoder for c in configs], [c.video.feature_dim for c in configs])
    members = []
    with atomic_path(out, CHECKPOINT_MARKER, overwrite) as tmp:
        tmp.mkdir(parents=True)
        for m, ((folder, weight), config, features) in enumerate(zip(kept, configs, slices, strict=True)):
            relative = f"{MEMBERS_DIR}/{m}"
            shutil.copytree(folder, tmp / relative, ignore=shutil.ignore_patterns(RESUME_STATE_FILE))
            saved = yaml.safe_load((folder / CONFIG_FILE).read_text())
            cache = resolve_cache_dir(folder, config.text.cache_dir, saved.get("out_dir"))
            if cache is not None:
                saved["model"]["text"]["cache_dir"] = str(Path(cache).resolve())
                write_text(tmp / relative / CONFIG_FILE, yaml.safe_dump(saved, sort_keys=False, allow_unicode=True))
            members.append(FusedMember(path=relative, weight=weight, features=features, source=str(folder)))
        _write_fusion(tmp, FusionRecord(members=members, frame_encoder=spec, chosen_on=chosen_on,
                                        validation=list(validation)))
    return Path(out)


def _write_fusion(folder: Path, record: FusionRecord) -> None:
    """``fusion.json`` and ``checkpoint.json`` of a fused checkpoint folder being written."""
    write_text(folder / FUSION_FILE, record.model_dump_json(indent=2))
    record_format(folder, FORMAT)
