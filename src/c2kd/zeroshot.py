"""Training-free checkpoints: a text tower that already embeds into the frame encoder's space, used as it is.

:func:`aligned_checkpoint` writes a checkpoint with no training: the text head is ``aligned`` (the identity on the
text backbone's vector plus a zero-initialised residual), the video tower is ``aligned`` (the mean of the
L2-normalised frames plus a zero-initialised residual), so the model scores

    cosine(text backbone vector, mean of normalised frame features)

e.g. multilingual CLIP text (``mclip-vit-b32``) against CLIP ViT-B/32 frames (``clip-vit-b32``): search over real
videos in 50+ languages with no training. The checkpoint records its frame encoder (``model.frame_encoder``), so
``c2kd extract --checkpoint`` makes features that fit and the search tools refuse others. It is an ordinary
checkpoint: ``c2kd evaluate``, ``index build``, ``search``, ``moments``, ``serve`` and C2KD training (as a teacher,
or as a start) read it.

Example:
    >>> aligned_checkpoint("runs/mclip", text="mclip-vit-b32", frame_encoder="clip-vit-b32")  # doctest: +SKIP
    PosixPath('runs/mclip')
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from c2kd.encoders.frames import FrameEncoderSpec
from c2kd.encoders.text.base import TextBackbone
from c2kd.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from c2kd.model import ModelConfig

#: ``data.path`` of a checkpoint that saw no data (``evaluate``, search and teachers never read it)
NO_DATA = "(none: training-free aligned checkpoint)"


#: the frame encoders that load a hub model (their ``model`` option), with what to call it in messages
HUB_FRAME_ENCODERS = {"clip-vit-b32": "CLIP frame model", "siglip": "SigLIP frame model"}
#: text backbone kinds whose checkpoint also holds the frame encoder they are aligned with (CLIP, SigLIP)
SHARED_CHECKPOINT_KINDS = ("clip-text", "siglip-text")
#: how a text backbone kind's hub model is probed and named when downloaded (packaged ones need no hub)
_TEXT_LAYOUTS = {"hf": ("config.json", "DIR"), "clip-text": ("config.json", "DIR"),
                 "siglip-text": ("config.json", "DIR"), "sentence-transformers": ("modules.json", "st:DIR")}


def frame_model(frame_encoder: str, frame_options: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """``(encoder, model, what)``: the encoder ``frame_encoder`` runs (a shortcut preset runs another, with its own
    options) and the hub model (or folder) it loads; None for an encoder that loads no hub model."""
    from c2kd.encoders.frames import FRAME_PRESETS

    preset = FRAME_PRESETS.get(frame_encoder)
    runs = preset.runs if preset is not None else ""
    encoder, options = (runs, {**preset.options, **frame_options}) if preset is not None and runs else (
        frame_encoder, dict(frame_options))
    if encoder not in HUB_FRAME_ENCODERS:
        return None
    model = options.get("model") or _default_frame_model(encoder)
    return (encoder, str(model), HUB_FRAME_ENCODERS[encoder]) if model else None


def _default_frame_model(encoder: str) -> str | None:
    """The model a hub frame encoder loads when none is given (``siglip`` needs one)."""
    if encoder != "clip-vit-b32":
        return None
    from c2kd.features.encoders.clip import DEFAULT_CLIP_MODEL

    return DEFAULT_CLIP_MODEL


def hub_models(names: Sequence[str], frame_encoder: str, frame_options: Mapping[str, Any]
               ) -> list[tuple[str, str, str, str]]:
    """The hub models (or folders) that text backbones ``names`` and the frame encoder load, as
    ``(source, what, probe_file, use_as)`` for :func:`c2kd.encoders.hub.ensure_hub_sources`; packaged ones need
    none. A checkpoint that holds both towers (CLIP, SigLIP) is named once."""
    from c2kd.encoders.text.loading import loader_of

    out = []
    for name in names:
        kind, source, _ = loader_of(name)
        if kind in _TEXT_LAYOUTS:
            out.append((source, f"text backbone {name}", *_TEXT_LAYOUTS[kind]))
    frames = frame_model(frame_encoder, frame_options)
    if frames is not None and all(source != frames[1] for source, *_ in out):
        out.append((frames[1], frames[2], "config.json", "--frame-model DIR"))
    return out


def aligned_pair(name: str) -> tuple[str, str]:
    """``(text, frames)``: a text preset and the frame encoder it is aligned with (``""``: none), for a text
    backbone name, or for a frame encoder preset that a text preset is aligned with (its first such preset)."""
    from c2kd.encoders.text.presets import TEXT_PRESETS

    preset = TEXT_PRESETS.get(name)
    if preset is not None:
        return name, preset.aligned_frames
    for text, candidate in TEXT_PRESETS.items():
        if candidate.aligned_frames == name:
            return text, name
    return name, ""


def offline_aligned_command(models: Sequence[tuple[str, str, str, str]], frame_encoder: str,
                            folders: Mapping[str, Path]) -> str:
    """The ``c2kd model aligned`` command that builds a pair from downloaded folders, with no hub: ``models`` are
    :func:`hub_models` of the pair (the text tower's first), ``folders`` where each went. A frame encoder shortcut
    (a preset that runs another with a hub id) becomes the encoder it runs, reading the folder."""
    from c2kd.encoders.frames import FRAME_PRESETS

    preset = FRAME_PRESETS.get(frame_encoder)
    encoder = (preset.runs if preset is not None else "") or frame_encoder
    text_source, _, _, use_as = models[0]
    command = (f"c2kd model aligned --text {use_as.replace('DIR', str(folders[text_source]))} "
               f"--frame-encoder {encoder}")
    return command + "".join(f" --frame-model {folders[source]}" for source, *_ in models[1:])


def download_hub_models(models: Sequence[tuple[str, str, str, str]], out: str | os.PathLike) -> list[Path]:
    """Fetch each hub model of :func:`hub_models` into ``out/OWNER--NAME`` (from the local cache when the hub is
    out of reach); every one that can be had neither way is named in one error first. Returns the folders."""
    import shutil

    from huggingface_hub import constants, snapshot_download

    from c2kd.encoders.hub import ensure_hub_sources, hub_offline, hub_reachable

    ensure_hub_sources(models)
    cached_only = hub_offline() or not hub_reachable()
    folders = []
    for source, _, _, _ in models:
        if Path(source).expanduser().exists():  # already a folder here
            folders.append(Path(source).expanduser())
            continue
        folder = Path(out) / source.replace("/", "--")
        if cached_only:  # a copy of the cached snapshot (its files are links into the cache)
            snapshot = snapshot_download(source, local_files_only=True, cache_dir=constants.HF_HUB_CACHE)
            shutil.copytree(snapshot, folder, dirs_exist_ok=True)
        else:
            snapshot_download(source, local_dir=folder, cache_dir=constants.HF_HUB_CACHE)
        folders.append(folder)
    return folders


#: written by `c2kd model download` into each folder it fetches for an aligned preset: which preset's tower the
#: folder holds, so that `c2kd model aligned` knows the local folder is one side of a known pair
DOWNLOADED_PRESET_FILE = "c2kd-preset.json"


def record_download(folder: Path, preset: str, aligned_frames: str) -> None:
    """Mark a folder fetched by `c2kd model download` as the tower of ``preset`` (aligned with ``aligned_frames``)."""
    import json

    (Path(folder) / DOWNLOADED_PRESET_FILE).write_text(json.dumps({"preset": preset,
                                                                    "aligned_frames": aligned_frames}) + "\n")


def _downloaded_preset(name: str) -> dict[str, Any]:
    """What `c2kd model download` recorded in the folder a text backbone name reads (empty: nothing)."""
    import json

    folder = next((name[len(p):] for p in ("st:", "clip:", "siglip:") if name.startswith(p)), name)
    record = Path(folder).expanduser() / DOWNLOADED_PRESET_FILE
    try:
        return dict(json.loads(record.read_text())) if record.is_file() else {}
    except (OSError, ValueError, TypeError):
        return {}


def aligned_pairs() -> list[tuple[str, str]]:
    """The (text backbone, frame encoder) presets known to embed into one space, for messages."""
    from c2kd.encoders.text.presets import TEXT_PRESETS

    return [(name, preset.aligned_frames) for name, preset in TEXT_PRESETS.items() if preset.aligned_frames]


def known_aligned(text: str, frame_encoder: str, frame_options: Mapping[str, Any]) -> bool:
    """Whether c2kd knows the text backbone ``text`` to embed into the space of ``frame_encoder``'s features: a
    preset pair (``aligned_frames``), a folder `c2kd model download` fetched for one, a CLIP text tower read with
    frames of the same CLIP checkpoint, or one text model on both sides (the Multi30K proxy's caption "frames";
    e5's query and passage roles)."""
    from c2kd.encoders.text.presets import TEXT_PRESETS

    preset = TEXT_PRESETS.get(text)
    if preset is not None and preset.aligned_frames == frame_encoder:
        return True  # a local copy of the frame model (--frame-model DIR) is the user's to match
    if _downloaded_preset(text).get("aligned_frames") == frame_encoder:
        return True
    shared = shared_checkpoint(text)
    if shared is not None and frame_encoder in HUB_FRAME_ENCODERS:
        return str(frame_options.get("model", shared)) == shared
    frames = TEXT_PRESETS.get(frame_encoder)
    one_model = preset is not None and frames is not None and (preset.kind, preset.source) == (frames.kind,
                                                                                                frames.source)
    return text == frame_encoder or one_model


def check_aligned(text: str, frame_encoder: str, frame_options: Mapping[str, Any],
                  declared: bool) -> Literal["known", "declared"]:
    """``"known"`` or, for a pair c2kd does not know with ``declared`` (the user's word), ``"declared"``; a pair it
    does not know without it is refused, naming the aligned choices (two towers of one size are not one space)."""
    if known_aligned(text, frame_encoder, frame_options):
        return "known"
    if declared:
        return "declared"
    choices = "; ".join(f"--text {t} --frame-encoder {f}" for t, f in aligned_pairs())
    raise ConfigError(
        f"--text {text} is not known to embed into the space of --frame-encoder {frame_encoder} features: an aligned "
        "model compares them directly, and towers trained apart give scores that mean nothing, even when their "
        f"sizes agree. Aligned choices: {choices} (local copies: `c2kd model download NAME --out DIR` fetches a "
        "pair and prints the command that reads it). If this pair was trained into one space, add "
        "--i-know-they-are-aligned (recorded in the checkpoint, and shown by `c2kd serve`)")


def shared_checkpoint(name: str) -> str | None:
    """The checkpoint a text backbone shares with the frame encoder it is aligned with (CLIP, SigLIP: the text
    tower's own checkpoint holds the image tower too); None for other backbones."""
    from c2kd.encoders.text.loading import loader_of

    kind, source, _ = loader_of(name)
    return source if kind in SHARED_CHECKPOINT_KINDS else None


def text_backbone_name(name: str) -> str:
    """The name that rebuilds ``name`` with its full aligned pipeline: a local sentence-transformers folder gets the
    ``st:`` prefix (without it, a folder is mean-pooled and its Dense layer that maps into CLIP's space is lost)."""
    from c2kd.encoders.text.presets import LOADER_PREFIXES, TEXT_PRESETS
    from c2kd.encoders.text.sentence_transformers import is_sentence_transformer_folder

    if name in TEXT_PRESETS or any(name.startswith(p) for p in LOADER_PREFIXES):
        return name
    if is_sentence_transformer_folder(name):
        return f"st:{name}"
    return name


def frame_encoder_spec(name: str, options: Mapping[str, Any] | None = None,
                       text_backbones: Mapping[str, TextBackbone] | None = None) -> FrameEncoderSpec:
    """The spec of a frame encoder, exactly as a feature store made by it records itself.

    ``name``: an encoder of ``c2kd extract`` (built once, on the CPU, to read its size and options), a text backbone
    preset (the Multi30K proxy's "frames" are captions encoded by a text model, e.g. ``packaged-muse``; taken from
    ``text_backbones`` when loaded already), or a frame-feature preset of ``c2kd.encoders.frames.FRAME_PRESETS``
    (e.g. ``s3d``, features imported from a release).
    """
    from c2kd.encoders.frames import FRAME_PRESETS
    from c2kd.encoders.text.loading import build_text_backbone
    from c2kd.encoders.text.presets import TEXT_PRESETS
    from c2kd.features.encoders import build_frame_encoder, encoder_spec, frame_encoder_names

    options = dict(options or {})
    if name in frame_encoder_names():
        return encoder_spec(build_frame_encoder(name, **{"device": "cpu", **options}))
    if options:
        raise ConfigError(f"frame encoder {name!r} takes no options (got {sorted(options)}); options are for the "
                          f"frame encoders of `c2kd extract`: {sorted(frame_encoder_names())}")
    if text_backbones and name in text_backbones:
        return FrameEncoderSpec(name=name, dim=int(text_backbones[name].dim))
    if name in TEXT_PRESETS:
        return FrameEncoderSpec(name=name, dim=int(build_text_backbone(name).dim))
    preset = FRAME_PRESETS.get(name)
    if preset is not None and preset.dim is not None:
        return FrameEncoderSpec(name=name, dim=preset.dim)
    raise ConfigError(f"unknown frame encoder {name!r}: use one of `c2kd extract`'s "
                      f"{sorted(frame_encoder_names())}, a text preset whose vectors are the frames (e.g. "
                      f"packaged-muse for the Multi30K proxy) or a feature preset {sorted(FRAME_PRESETS)}")


def aligned_model_config(text: str, spec: FrameEncoderSpec | None, dim: int, mix: Sequence[str] = (),
                         trainable: bool = True, residual_hidden: int = 1024, max_frames: int = 30,
                         cache_dir: str | None = None, layers: int = 2, word_buckets: int | None = None) -> ModelConfig:
    """The ``ModelConfig`` of a training-free aligned model: both towers start as the identity on their inputs
    (the text tower's aligned head, the video tower's mean of frames). Every aligned start is made here: ``c2kd
    model aligned``, and the quickstart's student (``layers=0``: the video tower is the mean of frames alone;
    ``word_buckets``: a trainable bag of hashed words beside the frozen backbones; ``spec`` None: recorded from
    the training data)."""
    from c2kd.encoders.text.tower import TextEncoderConfig
    from c2kd.encoders.video import VideoEncoderConfig
    from c2kd.encoders.words import WordBagConfig
    from c2kd.model import ModelConfig

    heads = 4 if dim % 4 == 0 else 1
    return ModelConfig(
        text=TextEncoderConfig(name=text, mix=list(mix), head="aligned", residual_hidden=residual_hidden,
                               trainable=trainable, embed_dim=dim, cache_dir=cache_dir,
                               words=WordBagConfig(buckets=word_buckets) if word_buckets else None),
        video=VideoEncoderConfig(feature_dim=dim, embed_dim=dim, heads=heads, max_frames=max_frames, aligned=True,
                                 layers=layers),
        frame_encoder=spec,
    )


def aligned_checkpoint(out: str | os.PathLike, text: str, frame_encoder: str, mix: Sequence[str] = (),
                       frame_options: Mapping[str, Any] | None = None, trainable: bool | None = None,
                       residual_hidden: int = 1024, max_frames: int = 30, data: str | None = None,
                       backbones: Sequence[TextBackbone] | None = None, seed: int = 0,
                       cache_dir: str | os.PathLike | None = None, overwrite: bool = False,
                       declared_aligned: bool = False) -> Path:
    """Write a checkpoint that needs no training to ``out`` and return its path (``overwrite``: replace a folder
    that is not a checkpoint, see :func:`c2kd.io.atomic_path`).

    The text backbone must be known to embed into the frame encoder's space (:func:`known_aligned`), or
    ``declared_aligned`` (the user's word, recorded as ``model.alignment: declared``).

    ``text``: an aligned text backbone (``mclip-vit-b32``, ``clip-vit-b32-text``, ``siglip2-base-patch16-256-text``,
    a CLIP or SigLIP folder, ``st:FOLDER``,
    ``packaged-muse`` for the Multi30K proxy, ...); ``mix``: further frozen backbones (the backbone mix) whose
    vectors the aligned head's residual may learn from later; ``frame_encoder`` + ``frame_options`` (e.g.
    ``{"model": ...}`` for ``clip-vit-b32`` or ``siglip``; by default a CLIP or SigLIP text tower's own
    checkpoint): what the video tower reads.
    ``trainable``: default, whether the text backbone can be fine-tuned at all. ``data``: recorded as
    ``data.path`` (no data is read). ``backbones``: already loaded backbones for ``[text, *mix]``.
    ``cache_dir``: keep the frozen backbones' caption embeddings in this on-disk cache (``c2kd.encoders.text.cache``).

    Raises ``ConfigError`` when the frame encoder's feature size differs from the text backbone's.
    """
    import torch

    from c2kd.checkpoint import save_checkpoint
    from c2kd.encoders.text.loading import build_text_backbone
    from c2kd.model import build_model
    from c2kd.train.config import TrainConfig

    text = text_backbone_name(text)
    names = [text, *mix]
    options = dict(frame_options or {})
    alignment = check_aligned(text, frame_encoder, options, declared_aligned)
    shared = shared_checkpoint(text)
    if frame_encoder in HUB_FRAME_ENCODERS and "model" not in options and shared is not None:
        options["model"] = shared  # CLIP (SigLIP) text and frames from the same checkpoint
    if backbones is None:
        from c2kd.encoders.hub import ensure_hub_sources

        ensure_hub_sources(hub_models(names, frame_encoder, options))  # every missing model in one message
    parts = list(backbones) if backbones is not None else [build_text_backbone(n) for n in names]
    if len(parts) != len(names):
        raise ValueError(f"{len(parts)} backbones given for {names}")
    spec = frame_encoder_spec(frame_encoder, options, dict(zip(names, parts)))
    dim = int(parts[0].dim)
    if spec.dim != dim:
        raise ConfigError(
            f"text backbone {text!r} gives {dim}-d vectors but the frame encoder {spec.describe()} gives "
            f"{spec.dim}-d features: an aligned model compares them directly, so both must come from one embedding "
            "space (e.g. --text mclip-vit-b32 or clip-vit-b32-text with --frame-encoder clip-vit-b32; "
            "--text packaged-muse with --frame-encoder packaged-muse for the Multi30K proxy)")
    if trainable is None:
        trainable = bool(parts[0].supports_training)
    model_config = aligned_model_config(text, spec, dim, mix, trainable, residual_hidden, max_frames,
                                        None if cache_dir is None else str(cache_dir))
    model_config.alignment = alignment
    torch.manual_seed(seed)  # the residuals' first layers (their last layers are zero: no effect untrained)
    model = build_model(model_config, backbones=parts)
    config = TrainConfig(stage="zero-shot", data={"path": data or NO_DATA}, model=model_config, out_dir=str(out))
    return save_checkpoint(out, model.eval(), config, overwrite=overwrite)
