"""Read a checkpoint of the authors' trainer (``.pth``) without running its pickled code, and import its model.

The file is a ``torch.save`` dict (``arch``, ``epoch``, ``step``, ``state_dict``, ``optimizer``, ``monitor_best``,
``config``) whose ``config`` is an object of their code (``parse_config.ConfigParser``) holding an
``argparse.Namespace`` and paths. It is read with torch's restricted unpickler (``weights_only=True``): only
tensors, builtin containers and the stand-ins below may be built; their class is never imported and nothing of
theirs runs. A file that names any other global is refused.

Weights are mapped by name (:data:`KEY_MAP`); the modules that compute neither embedding (the audio CNN and its
projections, the word2vec path, the text-to-text head) are left out, and ``fusion.*`` (an alias of
``fusion_video.*``) is checked identical and left out. Any other key means an architecture this importer does not
know, and is refused.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from c2kd.authors.checkpoint import save_authors_folder
from c2kd.authors.model import AuthorsArchitecture, AuthorsModel
from c2kd.encoders.frames import FrameEncoderSpec
from c2kd.errors import CheckpointError, ConfigError

#: the authors' class -> the hub model its text encoder was built from (their student: LaBSE)
AUTHORS_TEXT_MODELS = {
    "BaselineTokenFusionPerModModelLaBSE": "sentence-transformers/LaBSE",
    "BaselineTokenFusionPerModModelMBert": "bert-base-multilingual-uncased",
    "BaselineTokenFusionPerModModelXLMbase": "xlm-roberta-base",
    "BaselineTokenFusionPerModModelDistill": "sentence-transformers/distiluse-base-multilingual-cased-v2",
}
FAMILY = "BaselineTokenFusionPerModModel"

#: the authors' key prefix -> this package's (AuthorsModel's module names)
KEY_MAP = {
    "fusion_text.": "text_encoder.",
    "text_proj.0.": "text_norm.",
    "text_proj.1.fc.": "text_gate.linear.",
    "text_proj.1.cg.fc.": "text_gate.gate.",
    "video_token_proj.fc.": "frame_proj.linear.",
    "video_token_proj.cg.fc.": "frame_proj.gate.",
    "video_norm_layer.": "frame_norm.",
    "fusion_video.": "fusion.",
    "video_proj.fc.": "video_gate.linear.",
    "video_proj.cg.fc.": "video_gate.gate.",
}
#: key prefixes of modules that compute neither embedding (never run for text-video retrieval)
UNUSED = ("davenet.", "audio_norm_layer.", "audio_token_proj.", "audio_proj.", "text_norm_layer.",
          "text_token_proj.", "text_proj_t2t.")
#: ``fusion.*`` is the same module as ``fusion_video.*``
ALIAS = ("fusion.", "fusion_video.")
#: buffers older transformers saved and newer ones rebuild (not in their state dict)
REBUILT_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")

#: architecture arguments that must have these values: the computation this package implements
REQUIRED_ARGS: dict[str, Any] = {
    "pre_projection": "gated", "projection": "gated", "use_cls_tokens": False, "use_positional_emb": False,
    "individual_projections": True, "cross_modal": False, "use_norm_layers": True,
}
REQUIRED_FUSION: dict[str, Any] = {"cls_token": True, "type_embedding": False, "use_attention_masks": True,
                                   "cls_token_per_pair": False}


class _StoredConfig:
    """Stand-in for the authors' ``parse_config.ConfigParser``: built without ``__init__``, its ``__dict__``
    filled from the file."""


class _StoredPath:
    """Stand-in for ``pathlib`` paths in the file (their parts kept as strings; no file is touched)."""

    def __init__(self, *parts: Any):
        self.parts = tuple(str(p) for p in parts)

    def __str__(self) -> str:
        return "/".join(self.parts)


def _stand_in(cls: type, module: str, name: str) -> type:
    return type(name, (cls,), {"__module__": module, "__qualname__": name})


_SAFE = [
    _stand_in(_StoredConfig, "parse_config", "ConfigParser"),
    _stand_in(_StoredPath, "pathlib", "PosixPath"),
    _stand_in(_StoredPath, "pathlib", "WindowsPath"),
    _stand_in(_StoredPath, "pathlib", "PurePosixPath"),
    _stand_in(_StoredPath, "pathlib", "PureWindowsPath"),
]


def read_authors_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The dict an authors' ``.pth`` file holds, read with the restricted unpickler (no code of theirs runs).

    Its ``config`` comes back as a plain object whose ``config`` attribute is their nested config (dicts).
    """
    import argparse

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} not found: give the .pth file of the authors' trainer (e.g. "
                              "weights/.../latest_model.pth from their weights.tar.gz)")
    try:
        with torch.serialization.safe_globals([*_SAFE, argparse.Namespace]):
            try:
                loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
                loaded = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) file
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise CheckpointError(f"{path}: refusing to load it: it names code outside what an authors' checkpoint "
                              f"holds ({first[:300]}); get the file again from the authors' release") from exc
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({exc.__class__.__name__}: "
                              f"{str(exc)[:200]}); download it again") from exc
    if not isinstance(loaded, Mapping) or "state_dict" not in loaded:
        raise CheckpointError(f"{path} holds no 'state_dict': not a checkpoint of the authors' trainer")
    return dict(loaded)


def stored_architecture(loaded: Mapping[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    """``(class name, arguments)`` of the model a checkpoint holds, from its stored config (``arch``)."""
    config = getattr(loaded.get("config"), "config", None)
    arch = config.get("arch") if isinstance(config, Mapping) else None
    if not isinstance(arch, Mapping) or "type" not in arch:
        raise CheckpointError(f"{where}: its stored config names no architecture (config['arch']['type']): not a "
                              "checkpoint of the authors' trainer")
    name = str(arch["type"])
    if loaded.get("arch") not in (None, name):
        raise CheckpointError(f"{where}: the checkpoint's arch {loaded.get('arch')!r} is not its config's {name!r}")
    return name, dict(arch.get("args") or {})


def check_arguments(name: str, args: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Refuse an architecture this package does not compute; return the fusion arguments."""
    if not name.startswith(FAMILY):
        raise CheckpointError(f"{where}: architecture {name!r} is not of the {FAMILY}* family c2kd imports")
    fusion = dict(args.get("fusion_params") or {})
    for key, want in (*REQUIRED_ARGS.items(), *((f"fusion_params.{k}", v) for k, v in REQUIRED_FUSION.items())):
        got = fusion.get(key.split(".", 1)[1]) if key.startswith("fusion_params.") else args.get(key)
        if got is not None and got != want:
            raise CheckpointError(f"{where}: {name} with {key}={got!r} is a variant c2kd does not implement (it "
                                  f"reads {key}={want!r})")
    return fusion


def map_state(state: Mapping[str, torch.Tensor], where: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The authors' weights under this package's names, and the key prefixes left out."""
    mapped: dict[str, torch.Tensor] = {}
    left_out: set[str] = set()
    for key, value in state.items():
        if key.startswith(UNUSED):
            left_out.add(key.split(".", 1)[0])
            continue
        if key.startswith(ALIAS[0]):
            twin = state.get(ALIAS[1] + key[len(ALIAS[0]):])
            if twin is None or twin.shape != value.shape or not torch.equal(twin, value):
                raise CheckpointError(f"{where}: {key} differs from its alias {ALIAS[1]}{key[len(ALIAS[0]):]}; "
                                      "the file is not as the authors' trainer writes it")
            left_out.add("fusion (alias of fusion_video)")
            continue
        prefix = next((p for p in KEY_MAP if key.startswith(p)), None)
        if prefix is None:
            raise CheckpointError(f"{where}: unknown weight {key!r}: this checkpoint's architecture is not one c2kd "
                                  "imports")
        if key.endswith(REBUILT_BUFFERS):
            continue
        mapped[KEY_MAP[prefix] + key[len(prefix):]] = value
    return mapped, sorted(left_out)


def architecture_from(name: str, args: Mapping[str, Any], state: Mapping[str, torch.Tensor],
                      where: str) -> AuthorsArchitecture:
    """The sizes of the model: from the stored arguments, checked against the weights' shapes."""
    fusion = check_arguments(name, args, where)
    try:
        frame_w = state["frame_proj.linear.weight"]
        text_w = state["text_gate.linear.weight"]
        fc1 = state["fusion.blocks.0.mlp.fc1.weight"]
    except KeyError as exc:
        raise CheckpointError(f"{where}: weight {exc} is missing: not a complete {name}") from exc
    width, feature_dim = frame_w.shape
    depth = len({k.split(".")[2] for k in state if k.startswith("fusion.blocks.")})
    stored_width = fusion.get("embed_dim", width)
    if stored_width != width:
        raise CheckpointError(f"{where}: fusion_params.embed_dim={stored_width} but its weights are {width}-wide")
    if fusion.get("depth", depth) != depth:
        raise CheckpointError(f"{where}: fusion_params.depth={fusion.get('depth')} but it holds {depth} blocks")
    frame_encoder = (FrameEncoderSpec(name="clip-vit-b32", dim=512) if feature_dim == 512
                     else FrameEncoderSpec(name="s3d", dim=1024) if feature_dim == 1024 else None)
    return AuthorsArchitecture(
        arch=name, feature_dim=int(feature_dim), width=int(width), depth=depth,
        heads=int(fusion.get("num_heads", 4)), mlp_hidden=int(fc1.shape[0]), text_hidden=int(text_w.shape[1]),
        embed_dim=int(text_w.shape[0]), apply_norm_layer=bool(fusion.get("apply_norm_layer", False)),
        frame_encoder=frame_encoder)


def _eval_settings(loaded: Mapping[str, Any]) -> tuple[int, int]:
    """``(max_words, n_video_tokens)`` of the stored evaluation loader (40 and 30 when it names none)."""
    config = getattr(loaded.get("config"), "config", None) or {}
    loaders = config.get("val_data_loader") if isinstance(config, Mapping) else None
    first = loaders[0] if isinstance(loaders, list) and loaders else loaders
    kwargs = ((first or {}).get("args") or {}).get("dataset_kwargs") or {} if isinstance(first, Mapping) else {}
    return int(kwargs.get("max_words", 40)), int(kwargs.get("n_video_tokens", 30))


def _text_backbone(source: str, where: str) -> tuple[Any, Any]:
    """The Hugging Face config and tokenizer of the text encoder (hub id or local folder)."""
    from transformers import AutoConfig, AutoTokenizer

    from c2kd.encoders.hub import ensure_hub_source, looks_like_path

    if looks_like_path(source) and not Path(source).is_dir():
        raise ConfigError(f"--text-backbone {source}: no such folder; give the folder of the text model (its "
                          "config.json and tokenizer) or its hub id")
    hub = ensure_hub_source(source, "text backbone (--text-backbone)")
    try:
        return (AutoConfig.from_pretrained(source, **hub), AutoTokenizer.from_pretrained(source, **hub))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the text backbone {source!r} for {where} ({str(exc)[:300]}); give "
                          "--text-backbone with a folder holding its config.json and tokenizer") from exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def import_authors_checkpoint(path: str | os.PathLike, out: str | os.PathLike,
                              text_backbone: str | None = None,
                              frame_encoder: str | FrameEncoderSpec | None = None,
                              overwrite: bool = False) -> AuthorsModel:
    """An authors' ``.pth`` checkpoint -> a ``c2kd-authors`` folder ``out``; returns the model.

    ``text_backbone``: the hub id or folder of its text encoder's config and tokenizer (default: the model its
    class was built from, :data:`AUTHORS_TEXT_MODELS`); the encoder's weights always come from the checkpoint.
    ``frame_encoder``: what its video side reads, a spec or a name (default: CLIP ViT-B/32 for 512-d frames, S3D
    for 1024-d). A folder at ``out`` is replaced only when it holds a checkpoint, or with ``overwrite``.
    """
    from c2kd.formats import CHECKPOINT_MARKER
    from c2kd.io import check_output

    path = Path(path)
    where = str(path)
    local = [p for p in (path, text_backbone) if p and Path(p).expanduser().exists()]
    check_output(out, CHECKPOINT_MARKER, inputs=local, overwrite=overwrite)
    loaded = read_authors_checkpoint(path)
    name, args = stored_architecture(loaded, where)
    state, left_out = map_state(loaded["state_dict"], where)
    architecture = architecture_from(name, args, state, where)
    max_words, max_frames = _eval_settings(loaded)
    if isinstance(frame_encoder, str):
        frame_encoder = FrameEncoderSpec(name=frame_encoder, dim=architecture.feature_dim)
    architecture = architecture.model_copy(update={
        "max_words": max_words, "max_frames": max_frames,
        **({"frame_encoder": frame_encoder} if frame_encoder is not None else {})})
    source = text_backbone or AUTHORS_TEXT_MODELS.get(name)
    if source is None:
        raise ConfigError(f"{where}: c2kd does not know which text model {name} was built from; give "
                          "--text-backbone HUB_ID_OR_FOLDER")
    config, tokenizer = _text_backbone(source, where)
    from c2kd.authors.checkpoint import build_text_encoder

    hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", None)
    if hidden is not None and hidden != architecture.text_hidden:
        raise ConfigError(f"--text-backbone {source}: its hidden size is {hidden}, but {where}'s text encoder is "
                          f"{architecture.text_hidden}-wide; give the text model this checkpoint was trained from")
    model = AuthorsModel(architecture, build_text_encoder(config), tokenizer)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{where} does not fit {name} with the text model {source!r}: "
                              f"{str(exc).splitlines()[0][:400]} (is --text-backbone the model it was trained "
                              "from?)") from exc
    model.eval()
    save_authors_folder(model, Path(out), overwrite=overwrite, source={
        "checkpoint": str(path.resolve()), "sha256": _sha256(path), "epoch": loaded.get("epoch"),
        "step": loaded.get("step"), "text_backbone": source, "left_out": left_out,
        "config_name": (getattr(loaded.get("config"), "config", None) or {}).get("name"),
    })
    return model

