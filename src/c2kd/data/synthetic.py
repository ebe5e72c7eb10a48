"""A small, learnable, multilingual synthetic dataset for tests, examples and quick checks.

Each video shows three latent concepts (an object, an action, a place). Its frame features are noisy mixtures
of one prototype vector per concept, with the object and action appearing in different frames. Captions name
the concepts through a template. Non-English captions are word-by-word "translations" into made-up lexicons
(one per language, derived deterministically from the language code) and are noisier: with a per-language
probability each concept word is mistranslated (replaced by another concept's word) or dropped. So English
retrieval is easier than the other languages, the gap C2KD is meant to close.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from c2kd.data.dataset import save_dataset
from c2kd.data.features import FeatureStoreWriter
from c2kd.languages import ENGLISH, normalize_languages

OBJECTS = ["dog", "cat", "car", "ball", "guitar", "horse", "boat", "child", "woman", "man", "bird", "bicycle",
           "train", "chef", "robot", "dancer"]
ACTIONS = ["runs", "jumps", "plays", "swims", "drives", "sings", "cooks", "dances", "sleeps", "climbs", "falls",
           "waves"]
PLACES = ["beach", "street", "kitchen", "park", "stage", "river", "snow", "field", "forest", "room"]
TEMPLATES = ["a {o} {a} in the {p}", "the {o} {a} near a {p}", "{o} {a} at the {p}", "there is a {o} that {a}",
             "in the {p} a {o} {a}"]
FUNCTION_WORDS = ["a", "the", "in", "near", "at", "there", "is", "that"]
_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "be", "do", "fa", "gu", "hi", "ja", "ke", "pu",
              "sa", "te", "wu", "xo", "ya", "ze", "ch", "sk", "tr"]


@dataclass
class SyntheticConfig:
    n_train: int = 400
    n_val: int = 80
    n_test: int = 120
    languages: list[str] = field(default_factory=lambda: ["en", "de", "fr", "cs"])
    captions_per_video: int = 5
    feature_dim: int = 64
    min_frames: int = 6
    max_frames: int = 20
    frame_noise: float = 0.6
    #: probability that a concept word is mistranslated or dropped, per language (English: 0 by default)
    noise: dict[str, float] = field(default_factory=lambda: {"en": 0.0, "de": 0.25, "fr": 0.3, "cs": 0.45})
    default_noise: float = 0.35
    #: test videos listed in the captions without features (counted as misses at evaluation)
    missing_test_videos: int = 0
    seed: int = 0


def _lexicon(lang: str) -> dict[str, str]:
    """A deterministic made-up word for every English word, per language (English maps to itself)."""
    words = OBJECTS + ACTIONS + PLACES + FUNCTION_WORDS
    if lang == ENGLISH:
        return {w: w for w in words}
    out, used = {}, set()
    for w in words:
        digest = hashlib.sha256(f"{lang}:{w}".encode()).digest()
        n = 2 + digest[0] % 2
        salt = 0
        while True:
            cand = "".join(_SYLLABLES[(digest[i + 1] + salt) % len(_SYLLABLES)] for i in range(n))
            if cand not in used:
                break
            salt += 1
        used.add(cand)
        out[w] = cand
    return out


def generate_synthetic(out: str | os.PathLike, config: SyntheticConfig | None = None) -> Path:
    """Write a synthetic dataset (captions + feature store) to ``out`` and return its path."""
    cfg = config or SyntheticConfig()
    langs = normalize_languages(cfg.languages)
    if ENGLISH not in langs:
        langs = [ENGLISH, *langs]
    rng = np.random.default_rng(cfg.seed)
    concepts = OBJECTS + ACTIONS + PLACES
    prototypes = rng.standard_normal((len(concepts), cfg.feature_dim)).astype(np.float32)
    index = {c: i for i, c in enumerate(concepts)}
    lexicons = {lang: _lexicon(lang) for lang in langs}
    root = Path(out)
    rows: dict[str, list] = {"video_id": [], "split": [], "lang": [], "caption_index": [], "text": []}
    splits = [("train", cfg.n_train), ("val", cfg.n_val), ("test", cfg.n_test)]
    with FeatureStoreWriter(root / "features", dim=cfg.feature_dim, encoder="synthetic", fps=1.0) as writer:
        for split, count in splits:
            for n in range(count):
                vid = f"{split}{n:05d}"
                o, a, p = OBJECTS[rng.integers(len(OBJECTS))], ACTIONS[rng.integers(len(ACTIONS))], PLACES[
                    rng.integers(len(PLACES))]
                n_frames = int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
                split_point = int(rng.integers(1, n_frames))
                frames = np.empty((n_frames, cfg.feature_dim), np.float32)
                for t in range(n_frames):
                    focus = o if t < split_point else a
                    frames[t] = (prototypes[index[focus]] + 0.5 * prototypes[index[p]]
                                 + cfg.frame_noise * rng.standard_normal(cfg.feature_dim))
                if split == "test" and n < cfg.missing_test_videos:
                    pass  # listed in the captions, but no features: a "missing" test video
                else:
                    writer.add(vid, frames, times=np.arange(n_frames, dtype=np.float32))
                for k in range(cfg.captions_per_video):
                    template = TEMPLATES[rng.integers(len(TEMPLATES))]
                    for lang in langs:
                        noise = cfg.noise.get(lang, cfg.default_noise)
                        slots = {}
                        for slot, word, pool in (("o", o, OBJECTS), ("a", a, ACTIONS), ("p", p, PLACES)):
                            u = rng.random()
                            if u < noise / 2:
                                word = pool[rng.integers(len(pool))]  # mistranslation
                            slots[slot] = "" if noise / 2 <= u < noise else lexicons[lang][word]
                        text = template.format(**slots)
                        words = [lexicons[lang].get(w, w) for w in text.split()]
                        rows["video_id"].append(vid)
                        rows["split"].append(split)
                        rows["lang"].append(lang)
                        rows["caption_index"].append(k)
                        rows["text"].append(" ".join(words))
    save_dataset(root, rows, name="synthetic", frame_encoder="synthetic", synthetic=vars(cfg) | {"languages": langs})
    return root
