"""Fixtures of the late-fusion and fused-model tests."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from c2kd.data.features import FeatureStore, FeatureStoreWriter
from c2kd_testkit import OWN_DIM, aligned_teacher


@pytest.fixture(scope="module")
def members(tmp_path_factory, tiny_dataset, tiny_text_models, teachers):
    """A trained run on the tiny dataset, and a training-free aligned model reading its own 32-d frames of the
    same videos (a copy of the dataset with another feature store)."""
    root = tmp_path_factory.mktemp("fusion")
    own = root / "own-frames"
    shutil.copytree(tiny_dataset, own)
    store = FeatureStore(tiny_dataset / "features")
    ids = list(store.ids)
    shutil.rmtree(own / "features")
    rng = np.random.default_rng(11)
    with FeatureStoreWriter(own / "features", dim=OWN_DIM, encoder="other-frames") as writer:
        for vid in ids:
            writer.add(vid, rng.normal(size=(len(store[vid]), OWN_DIM)).astype(np.float32))
    aligned = aligned_teacher(root / "aligned", tiny_text_models["teacher_a"], own)
    return {"checkpoints": [teachers[0], aligned], "datasets": [tiny_dataset, own]}
