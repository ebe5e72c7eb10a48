"""Builders of small split files in exactly the layouts of the authors' release."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def features(rng: np.random.Generator, dim: int, frames: int | None = None) -> np.ndarray:
    return rng.standard_normal((frames or int(rng.integers(2, 7)), dim)).astype(np.float32)


def write_pickle(path: Path, items: list[dict], protocol: int = 4) -> Path:
    with open(path, "wb") as fh:
        pickle.dump(items, fh, protocol=protocol)
    return path


def caption(vid: str, lang: str, k: int) -> str:
    return f"{lang} caption {k} of {vid}"
