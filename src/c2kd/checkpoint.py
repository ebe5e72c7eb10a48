"""The one owner of run folders and checkpoints: their file names, saving, loading and a run's identity.

A run folder (``c2kd train --out``)::

    config.yaml           the run's full config (its settings when it was last started)
    best/                 checkpoint selected on the validation split
    last/                 checkpoint after the latest epoch (or ``save_every_steps``), with the trainer's
                          resume state (trainer_state.pt: optimizer, scheduler, RNG)
    history.json          per-epoch training and validation summaries
    tensorboard/          scalars for TensorBoard
    test_metrics.json     test-split results of best/, with the evaluation protocol that computed them

A checkpoint folder of one dual encoder (``best/``, ``last/`` or one written by `save_checkpoint`; the
``c2kd-dual-encoder`` format of :mod:`c2kd.formats`, which loads any format)::

    checkpoint.json       its format (folders written before it existed are known by model.safetensors)
    model.safetensors     weights of the dual encoder (student or teacher)
    model.safetensors.sha256  its SHA-256 (``sha256sum -c`` format), checked on every load; checkpoints written
                          before it existed load without the check
    config.yaml           the config of the run that made it; its ``model`` section alone rebuilds the model
    text_backbone/        backbone.json (the backbone's kind, which rebuilds it) + what that kind needs (Hugging
                          Face config + tokenizer), so the model rebuilds with no hub access; mix-<i>/ per
                          further backbone of the mix (c2kd.encoders.text.loading)
    metrics.json          validation metrics when it was saved (optional)

Every checkpoint folder is written in one atomic rename.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import BaseModel, ValidationError

from c2kd.encoders.frames import FrameEncoderSpec, parts_of
from c2kd.errors import CheckpointError, validation_problems
from c2kd.formats import (
    BEST_AVERAGE_DIR,
    BEST_DIR,
    CHECKPOINT_MARKER,
    LAST_DIR,
    CheckpointFormat,
    record_format,
    register_format,
    require_format,
)
from c2kd.io import atomic_path, output_errors, save_torch, write_text
from c2kd.model import DualEncoder, ModelConfig, build_model
from c2kd.retrieval import RetrievalModel

FORMAT = DualEncoder.checkpoint_format
WEIGHTS_FILE = "model.safetensors"
CHECKSUM_FILE = WEIGHTS_FILE + ".sha256"
CONFIG_FILE = "config.yaml"
BACKBONE_DIR = "text_backbone"
METRICS_FILE = "metrics.json"
RESUME_STATE_FILE = "trainer_state.pt"
HISTORY_FILE = "history.json"
TENSORBOARD_DIR = "tensorboard"
TEST_METRICS_FILE = "test_metrics.json"

# -- run identity ------------------------------------------------------------------------------------------------
#: settings that change nothing a run computes: a run may be continued, read back or shared with other values
PRESENTATION_SETTINGS = ("out_dir", "device", "log_every", "save_every_steps", "tensorboard", "progress",
                         "model.text.cache_dir", "data.num_workers")
#: settings that change only how a model is scored (recorded in test_metrics.json's ``protocol``): a finished run
#: is evaluated again with new values, never trained again. They score validation too, so they can move the
#: choice of best/ only between epochs whose validation scores tie exactly.
EVALUATION_SETTINGS = ("tie_policy", "missing_ranks")
#: settings left out of a run's identity: runs that differ only in these are the same run (one folder)
NOT_IDENTITY = (*PRESENTATION_SETTINGS, *EVALUATION_SETTINGS)
#: ... and these may also change when an interrupted run is continued (more epochs, other hardware)
RESUMABLE_SETTINGS = (*NOT_IDENTITY, "epochs", "precision")


def run_identity(settings: dict[str, Any], ignore: tuple[str, ...] = NOT_IDENTITY) -> dict[str, Any]:
    """``settings`` (a config as a nested dict) without the dotted settings in ``ignore``.

    Example: ``run_identity({"device": "cpu", "data": {"path": "d", "num_workers": 2}})`` is
    ``{"data": {"path": "d"}}``.
    """
    kept: dict[str, Any] = {}
    for key, value in settings.items():
        if key in ignore:
            continue
        inner = tuple(name.removeprefix(f"{key}.") for name in ignore if name.startswith(f"{key}."))
        kept[key] = run_identity(value, inner) if isinstance(value, dict) and inner else value
    return kept


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def changed_settings(saved: BaseModel, new: BaseModel, ignore: tuple[str, ...] = RESUMABLE_SETTINGS) -> list[str]:
    """The settings ``new`` changes from ``saved``, as ``"loss.alpha: 0.5 -> 0.1"``, except those in ``ignore``."""
    before = _flatten(run_identity(saved.model_dump(mode="json"), ignore))
    after = _flatten(run_identity(new.model_dump(mode="json"), ignore))
    return [f"{key}: {before.get(key)!r} -> {after.get(key)!r}" for key in sorted(before.keys() | after.keys())
            if before.get(key) != after.get(key)]


def dump_config(config: BaseModel) -> str:
    """A config as the YAML of ``config.yaml``."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def write_run_config(run_dir: str | os.PathLike, config: BaseModel) -> Path:
    """Write the run's ``config.yaml`` at the top of its folder (atomically), creating the folder first."""
    with output_errors(run_dir):  # a folder that cannot be made is named itself
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    return write_text(Path(run_dir) / CONFIG_FILE, dump_config(config))


# -- weights -----------------------------------------------------------------------------------------------------
def save_weights(directory: str | os.PathLike, state: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> Path:
    """Write ``state`` to ``directory/model.safetensors`` and record its SHA-256 beside it (see `load_weights`)."""
    from safetensors.torch import save_file

    weights = Path(directory) / WEIGHTS_FILE
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(weights), metadata=metadata)
    (Path(directory) / CHECKSUM_FILE).write_text(f"{_sha256(weights)}  {WEIGHTS_FILE}\n")
    return weights


def load_weights(directory: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read ``directory/model.safetensors``, refusing a file that no longer matches its recorded SHA-256.

    A checkpoint without a checksum file (written by an earlier version) is read unchecked; one that cannot be
    parsed (truncated, overwritten header) is refused all the same. Weights named as earlier versions named them
    come back under today's names (`renamed_keys`); the file itself is never rewritten, so its fingerprint stays.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights = check_weights(directory)
    try:
        return renamed_keys(load_file(str(weights)))
    except SafetensorError as exc:
        raise CheckpointError(
            f"checkpoint damaged: {weights} cannot be read ({exc}); copy it again or train it again"
        ) from exc


def check_weights(directory: str | os.PathLike) -> Path:
    """The weights file of ``directory``, checked against the SHA-256 recorded beside it when it was saved (a
    checkpoint written before checksums is not checked); :class:`CheckpointError` when missing or changed."""
    weights = Path(directory) / WEIGHTS_FILE
    recorded = Path(directory) / CHECKSUM_FILE
    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing: the checkpoint was only partly copied; copy it again")
    if recorded.exists():
        fields = recorded.read_text(errors="replace").split()
        if _sha256(weights) != (fields[0] if fields else ""):
            raise CheckpointError(
                f"checkpoint damaged: {weights} does not match the SHA-256 recorded in {recorded} when it was saved "
                "(the file was changed or only partly copied); copy it again or train it again"
            )
    return weights


def _sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(directory: str | os.PathLike, model: DualEncoder, config: BaseModel,
                    metrics: dict[str, Any] | None = None, resume_state: dict[str, Any] | None = None,
                    overwrite: bool = False) -> Path:
    """Write a complete checkpoint folder in one atomic rename (an old checkpoint is replaced whole; any other
    folder only with ``overwrite``, see :func:`c2kd.io.atomic_path`).

    ``config`` is the run's config (its ``model`` section rebuilds ``model``); ``resume_state`` (the trainer's
    optimizer, scheduler and RNG state, for ``last/``) is saved as ``trainer_state.pt`` in the same rename.
    """
    with atomic_path(directory, CHECKPOINT_MARKER, overwrite) as tmp:
        tmp.mkdir(parents=True)
        save_weights(tmp, model.state_dict(), metadata={"format": FORMAT})
        record_format(tmp, FORMAT)
        (tmp / CONFIG_FILE).write_text(dump_config(config))
        model.text.backbone.save_architecture(tmp / BACKBONE_DIR)
        if metrics is not None:
            (tmp / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
        if resume_state is not None:
            save_torch(tmp / RESUME_STATE_FILE, resume_state)
    return Path(directory)


def load_resume_state(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The resume state saved with the checkpoint in ``directory`` (None when it holds none)."""
    path = Path(directory) / RESUME_STATE_FILE
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    average = state.get("average") if isinstance(state, dict) else None
    if isinstance(average, dict) and isinstance(average.get("average"), dict):  # the weight average, by name
        average["average"] = renamed_keys(average["average"])
    return state


# -- loading -----------------------------------------------------------------------------------------------------
@register_format
class DualEncoderFormat(CheckpointFormat):
    """A checkpoint folder of one :class:`~c2kd.model.DualEncoder` (this module's layout)."""

    name = FORMAT
    marker = WEIGHTS_FILE
    title = "one dual encoder"

    def load(self, directory: Path, device: str | torch.device = "cpu", persist_cache: bool = True) -> DualEncoder:
        return load_checkpoint(directory, device=device, persist_cache=persist_cache)[0]

    def frame_encoder(self, directory: Path) -> list[FrameEncoderSpec]:
        return parts_of(read_model_config(directory).frame_encoder)

    def verify(self, directory: Path) -> None:
        check_weights(directory)

    def fingerprint(self, directory: Path) -> str:
        """SHA-256 of the weights file's size and its first and last MiB."""
        weights = directory / WEIGHTS_FILE
        size = weights.stat().st_size
        digest = hashlib.sha256(str(size).encode())
        with open(weights, "rb") as fh:
            digest.update(fh.read(1 << 20))
            fh.seek(max(0, size - (1 << 20)))
            digest.update(fh.read(1 << 20))
        return digest.hexdigest()[:16]

    def save(self, model: RetrievalModel, directory: Path) -> Path:
        """The weights and the model section of the config (a run's other sections stay in its run folder)."""
        if not isinstance(model, DualEncoder):
            raise TypeError(f"the dual-encoder format saves DualEncoder models, not {type(model).__name__}")
        return save_checkpoint(directory, model, ModelSection(model=model.config))


class ModelSection(BaseModel):
    """The ``config.yaml`` of a model saved alone: its ``model`` section."""

    model: ModelConfig


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu",
                    persist_cache: bool = True) -> tuple[DualEncoder, ModelConfig]:
    """Rebuild the model of a checkpoint from its config's ``model`` section and load its weights strictly.

    Returns ``(model, ModelConfig)``. A frozen text backbone's embedding cache (``model.text.cache_dir``) is
    found from the run folder (see `resolve_cache_dir`); ``persist_cache=False`` only reads it (search: queries
    are not written to disk).
    """
    from c2kd.encoders.text.loading import rebuild_text_backbones

    directory = require_format(path, FORMAT, "cannot be trained on or used as a teacher")
    saved = _read_saved_config(directory)
    config = _model_section(saved, directory / CONFIG_FILE)
    config.text.cache_dir = resolve_cache_dir(directory, config.text.cache_dir, saved.get("out_dir"))
    names = [config.text.name, *config.text.mix]
    model = build_model(config, backbones=rebuild_text_backbones(names, directory / BACKBONE_DIR),
                        persist_cache=persist_cache)
    state = load_weights(directory)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{directory / WEIGHTS_FILE} does not match its config.yaml: {exc}") from exc
    return model.to(device), config


def resolve_cache_dir(directory: Path, cache: str | None, out_dir: str | None) -> str | None:
    """The absolute text-cache folder ``cache`` of the checkpoint in ``directory`` (None without one).

    A relative ``model.text.cache_dir`` was written relative to the folder the run was started from, like
    ``out_dir``: that folder is where the run folder (``directory`` or its parent, for ``best/`` and ``last/``)
    sits when ``out_dir``'s parts are taken off its end, wherever the command that loads it runs. When the run
    folder no longer ends in ``out_dir`` (moved or renamed), the cache is looked for inside the run folder.
    """
    if cache is None or Path(cache).is_absolute():
        return cache
    here = directory.resolve()
    if out_dir:
        out = Path(os.path.normpath(out_dir))
        for run in (here, here.parent):
            if not out.is_absolute() and run.parts[-len(out.parts):] == out.parts:
                return str(run.parents[len(out.parts) - 1] / cache)
    return str((here.parent if here.name in (BEST_DIR, BEST_AVERAGE_DIR, LAST_DIR) else here) / cache)


def _read_saved_config(directory: Path) -> dict[str, Any]:
    """The ``config.yaml`` of the checkpoint in ``directory`` as a dict."""
    config_path = directory / CONFIG_FILE
    if not config_path.exists():
        raise CheckpointError(f"{config_path} is missing: the checkpoint cannot be rebuilt without its config")
    try:
        saved = yaml.safe_load(config_path.read_text())
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{config_path} is not valid YAML ({exc.__class__.__name__}); copy the checkpoint "
                              "again or train it again") from exc
    if not isinstance(saved, dict):
        raise CheckpointError(f"{config_path} is not a mapping of settings; copy the checkpoint again")
    return saved


def _model_section(saved: dict[str, Any], where: Path) -> ModelConfig:
    """The validated ``model`` section of a saved config (defaults when the section is absent)."""
    try:
        return ModelConfig.model_validate(saved.get("model") or {})
    except ValidationError as exc:
        raise CheckpointError(f"{where}: the model section cannot be rebuilt "
                              f"({validation_problems(exc, prefix='model.')})") from exc


def read_model_config(path: str | os.PathLike) -> ModelConfig:
    """The ``model`` section of a checkpoint's (or run folder's) ``config.yaml``, read without the weights."""
    directory = require_format(path, FORMAT, "has no single model section")
    return _model_section(_read_saved_config(directory), directory / CONFIG_FILE)


def checkpoint_data_path(path: str | os.PathLike) -> str | None:
    """The dataset folder a checkpoint's config names (``data.path``; None when it names none)."""
    directory = require_format(path, FORMAT, "names no single dataset")
    data = _read_saved_config(directory).get("data")
    value = data.get("path") if isinstance(data, dict) else None
    return str(value) if value else None


#: state-dict prefixes of earlier versions -> today's: the gated text head lived at ``text.norm`` /
#: ``text.projection`` before it became its own module, and the aligned head's map and gate of the backbone mix
#: (``model.text.mix``) were ``fused_map`` / ``fused_gate`` before the mix was told apart from fused checkpoints
_OLD_PREFIXES = {"text.norm.": "text.head.norm.", "text.projection.": "text.head.projection.",
                 "text.head.fused_map.": "text.head.mix_map.", "text.head.fused_gate.": "text.head.mix_gate."}


def renamed_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` (weights by name) with the names of earlier versions (``_OLD_PREFIXES``) made today's."""
    out = {}
    for key, value in state.items():
        for old, new in _OLD_PREFIXES.items():
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out
