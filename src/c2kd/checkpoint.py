"""Checkpoints: safetensors weights with the run's full config beside them, written atomically.

A checkpoint directory::

    model.safetensors     weights of the dual encoder (student or teacher)
    model.safetensors.sha256  its SHA-256 (``sha256sum -c`` format), checked on every load; checkpoints written
                          before it existed load without the check
    config.yaml           the TrainConfig of the run that made it
    text_backbone/        Hugging Face config + tokenizer, so the model rebuilds with no hub access
                          (+ backbone.json for CLIP / sentence-transformers towers)
    metrics.json          validation metrics when it was saved (optional)
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
import yaml

from c2kd.encoders.frames import FrameEncoderSpec
from c2kd.errors import CheckpointError
from c2kd.io import atomic_path
from c2kd.model import DualEncoder, build_model

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
BACKBONE_DIR = "text_backbone"
CHECKSUM_FILE = WEIGHTS_FILE + ".sha256"


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
    parsed (truncated, overwritten header) is refused all the same.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights = Path(directory) / WEIGHTS_FILE
    recorded = Path(directory) / CHECKSUM_FILE
    if recorded.exists():
        fields = recorded.read_text().split()
        if _sha256(weights) != (fields[0] if fields else ""):
            raise CheckpointError(
                f"checkpoint damaged: {weights} does not match the SHA-256 recorded in {recorded} when it was saved "
                "(the file was changed or only partly copied); copy it again or train it again"
            )
    try:
        return load_file(str(weights))
    except SafetensorError as exc:
        raise CheckpointError(
            f"checkpoint damaged: {weights} cannot be read ({exc}); copy it again or train it again"
        ) from exc


def _sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(directory: str | os.PathLike, model: DualEncoder, config, metrics: dict | None = None) -> Path:
    """Write a complete checkpoint directory in one atomic rename (an old one is replaced whole)."""
    from c2kd.train.config import dump_config

    with atomic_path(directory) as tmp:
        tmp.mkdir(parents=True)
        save_weights(tmp, model.state_dict(), metadata={"format": "c2kd-dual-encoder"})
        (tmp / CONFIG_FILE).write_text(dump_config(config))
        model.text.backbone.save_architecture(tmp / BACKBONE_DIR)
        if metrics is not None:
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return Path(directory)


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """Accept a checkpoint folder or a run folder (then its ``best/``, else ``last/``)."""
    p = Path(path)
    if (p / WEIGHTS_FILE).exists():
        return p
    for sub in ("best", "last"):
        if (p / sub / WEIGHTS_FILE).exists():
            return p / sub
    raise CheckpointError(
        f"no {WEIGHTS_FILE} in {p} (nor in {p}/best or {p}/last): give a checkpoint folder written by `c2kd train`"
    )


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu", persist_cache: bool = True):
    """Rebuild the model of a checkpoint and load its weights strictly. Returns ``(model, TrainConfig)``.

    A frozen text backbone's embedding cache (``model.text.cache_dir``) is found from the run folder (see
    `resolve_cache_dir`); ``persist_cache=False`` only reads it (search: queries are not written to disk).
    """
    from c2kd.encoders.registry import rebuild_text_backbones

    directory = resolve_checkpoint(path)
    config = read_checkpoint_config(directory)
    config.model.text.cache_dir = resolve_cache_dir(directory, config)
    names = [config.model.text.name, *config.model.text.fuse]
    model = build_model(config.model, backbones=rebuild_text_backbones(names, directory / BACKBONE_DIR),
                        persist_cache=persist_cache)
    state = _renamed_keys(load_weights(directory))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{directory / WEIGHTS_FILE} does not match its config.yaml: {exc}") from exc
    return model.to(device), config


def resolve_cache_dir(directory: Path, config) -> str | None:
    """The absolute text-cache folder of the checkpoint in ``directory`` (None without one).

    A relative ``model.text.cache_dir`` was written relative to the folder the run was started from, like
    ``out_dir``: that folder is where the run folder (``directory`` or its parent, for ``best/`` and ``last/``)
    sits when ``out_dir``'s parts are taken off its end, wherever the command that loads it runs. When the run
    folder no longer ends in ``out_dir`` (moved or renamed), the cache is looked for inside the run folder.
    """
    cache = config.model.text.cache_dir
    if cache is None or Path(cache).is_absolute():
        return cache
    out = Path(os.path.normpath(config.out_dir))
    here = directory.resolve()
    for run in (here, here.parent):
        if not out.is_absolute() and run.parts[-len(out.parts):] == out.parts:
            return str(run.parents[len(out.parts) - 1] / cache)
    return str((here.parent if here.name in ("best", "last") else here) / cache)


def read_checkpoint_config(path: str | os.PathLike):
    """The ``TrainConfig`` of a checkpoint (or run folder), read from its ``config.yaml`` without the weights."""
    from c2kd.train.config import TrainConfig

    directory = resolve_checkpoint(path)
    config_path = directory / CONFIG_FILE
    if not config_path.exists():
        raise CheckpointError(f"{config_path} is missing: the checkpoint cannot be rebuilt without its config")
    return TrainConfig.model_validate(yaml.safe_load(config_path.read_text()))


def checkpoint_frame_encoder(path: str | os.PathLike) -> FrameEncoderSpec | None:
    """The frame encoder a checkpoint's video tower reads (``model.frame_encoder``; None for old checkpoints)."""
    return read_checkpoint_config(path).model.frame_encoder


#: state-dict prefixes of checkpoints written before the text head became its own module
_OLD_PREFIXES = {"text.norm.": "text.head.norm.", "text.projection.": "text.head.projection."}


def _renamed_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Read checkpoints of earlier versions: their gated text head lived at ``text.norm`` / ``text.projection``."""
    out = {}
    for key, value in state.items():
        for old, new in _OLD_PREFIXES.items():
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out
