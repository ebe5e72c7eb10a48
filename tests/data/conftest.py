"""Fixtures of the data tests; for translation: a small dataset and tiny random translation models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from caption_set import CORPUS, ENGLISH

from c2kd.data.dataset import save_dataset
from c2kd.data.features import FeatureStoreWriter


def build_dataset(root: Path) -> Path:
    rows = [
        {"video_id": v, "split": s, "lang": "en", "caption_index": k, "text": t}
        for (v, s), caps in ENGLISH.items()
        for k, t in enumerate(caps)
    ]
    rows += [{"video_id": "v0", "split": "train", "lang": "ja", "caption_index": 0, "text": "料理"}]
    save_dataset(root, rows, name="tiny", source={"format": "test"})
    rng = np.random.default_rng(0)
    with FeatureStoreWriter(root / "features", dim=4) as writer:
        for vid, _ in ENGLISH:
            writer.add(vid, rng.standard_normal((3, 4)).astype(np.float32))
    return root


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread; several threads on a busy 2-core machine are 30x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return build_dataset(tmp_path / "dataset")


@pytest.fixture(scope="session")
def marian_models(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Per-language models ``<dir>/opus-mt-en-{lang}``: de and es work, fr always outputs nothing."""
    from tiny_seq2seq import make_tiny_seq2seq

    root = tmp_path_factory.mktemp("models")
    make_tiny_seq2seq(root / "opus-mt-en-de", CORPUS, seed=1)
    make_tiny_seq2seq(root / "opus-mt-en-es", CORPUS, seed=2)
    make_tiny_seq2seq(root / "opus-mt-en-fr", CORPUS, seed=3, always_empty=True)
    return str(root / "opus-mt-en-{lang}")


@pytest.fixture(scope="session")
def m2m_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_seq2seq import make_tiny_seq2seq

    root = tmp_path_factory.mktemp("m2m")
    return make_tiny_seq2seq(
        root / "m2m", CORPUS, architecture="m2m100", seed=4, language_tokens=["__en__", "__de__", "__fr__"]
    )
