"""A teacher that reads other frame features than the student (its own encoder), e.g. the proxy's e5 pair.

Checked against an independent computation: the untrained aligned teacher scores a pair as the cosine of its text
vector and the mean of its *own* normalised frames; zero-padding teachers of different sizes changes no score.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from c2kd.data.dataset import TrainingPairs, VideoTextDataset, save_dataset
from c2kd.data.features import FeatureStoreWriter
from c2kd.distill.teachers import (
    CachedTeacherScores,
    TeacherConfig,
    build_teacher_scores,
    load_teacher,
    load_teachers,
)
from c2kd.encoders.frames import FrameEncoderSpec
from c2kd.errors import CheckpointError, ConfigError, DataError
from c2kd_testkit import OWN_DIM, aligned_teacher


def own_frames_dataset(root: Path, video_ids: list[str], encoder: str = "other-frames", skip: int = 0) -> Path:
    """A dataset folder whose store holds 3 random ``OWN_DIM``-d frames per video (all but the first ``skip``)."""
    rng = np.random.default_rng(7)
    with FeatureStoreWriter(root / "features", dim=OWN_DIM, encoder=encoder) as writer:
        for vid in video_ids[skip:]:
            writer.add(vid, rng.normal(size=(3, OWN_DIM)).astype(np.float32))
    save_dataset(root, [{"video_id": video_ids[0], "split": "train", "lang": "en", "caption_index": 0,
                         "text": "only the features are read"}], name="own-frames")
    return root


@pytest.fixture(scope="module")
def setting(tmp_path_factory, tiny_dataset, tiny_text_models):
    root = tmp_path_factory.mktemp("own-frames")
    split = VideoTextDataset(tiny_dataset).split("train", ["en", "de"], training=True)
    data = own_frames_dataset(root / "data", split.video_ids)
    teacher = aligned_teacher(root / "teacher", tiny_text_models["teacher_a"], data)
    student_encoder = FrameEncoderSpec(name="synthetic", dim=16)
    return {"root": root, "split": split, "data": data, "teacher": teacher, "student": student_encoder,
            "text_model": tiny_text_models["teacher_a"]}


def batch_of(split, rows=(3, 1, 7, 0)):
    pairs = TrainingPairs(split, ["en", "de"], max_frames=30)
    return pairs.collate([pairs[i] for i in rows])


def test_the_teacher_scores_pairs_with_its_own_frames(setting, teachers):
    split, config = setting["split"], TeacherConfig(checkpoints=[str(setting["teacher"])], pooler="mean")
    scores = build_teacher_scores(config, split, 16, ["de"], 35, torch.device("cpu"), progress=False,
                                  frame_encoder=setting["student"])
    batch = batch_of(split)
    got = scores.matrices(batch, ["de"])["de"][0].numpy()

    # independent: cosine of the teacher's English text vector and the mean of the video's own normalised frames
    from c2kd.data.features import FeatureStore

    store = FeatureStore(setting["data"] / "features")
    teacher = load_teacher(setting["teacher"])
    ids = [split.video_ids[i] for i in batch.video_index.tolist()]
    videos = []
    for vid in ids:
        frames = store[vid] / np.linalg.norm(store[vid], axis=1, keepdims=True)
        mean = frames.mean(0)
        videos.append(mean / np.linalg.norm(mean))
    captions = [split.captions["en"][i][c] for i, c in zip(batch.video_index.tolist(), batch.caption_index.tolist())]
    text = teacher.embed_texts(captions).numpy()
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    np.testing.assert_allclose(got, text @ np.stack(videos).T, atol=3e-3)  # the cache keeps float16

    # pooled with a 16-d teacher on the student's frames: each matrix is what that teacher gives alone
    both = CachedTeacherScores([load_teacher(setting["teacher"]), *load_teachers(teachers[:1], 16)], split, ["en"],
                               progress=False, frames=[store, None], pooler="mean")
    alone = CachedTeacherScores(load_teachers(teachers[:1], 16), split, ["en"], progress=False)
    mats = both.matrices(batch, ["de"])["de"]
    assert mats.shape == (2, 4, 4)
    torch.testing.assert_close(mats[0], torch.from_numpy(got))
    torch.testing.assert_close(mats[1], alone.matrices(batch, ["de"])["de"][0])


def test_frames_of_the_teacher_are_found_given_or_refused_with_the_fix(setting, tiny_text_models):
    split, root, cpu = setting["split"], setting["root"], torch.device("cpu")

    def build(checkpoint: Path, **extra):
        config = TeacherConfig(checkpoints=[str(checkpoint)], **extra)
        return build_teacher_scores(config, split, 16, ["de"], 35, cpu, progress=False,
                                    frame_encoder=setting["student"])

    # the features given explicitly (a feature store folder) override the teacher's recorded data
    moved = aligned_teacher(root / "moved", setting["text_model"], root / "nowhere")
    with pytest.raises(DataError, match="names no dataset folder") as err:
        build(moved)
    assert "teachers.frames" in str(err.value) and "other-frames" in str(err.value)
    given = build(moved, frames={str(moved): str(setting["data"] / "features")})
    torch.testing.assert_close(given.matrices(batch_of(split), ["de"])["de"],
                               build(setting["teacher"]).matrices(batch_of(split), ["de"])["de"])

    # a store that lacks training videos, or was made by another encoder, is refused naming the folder
    short = own_frames_dataset(root / "short", split.video_ids, skip=2)
    with pytest.raises(DataError, match="lacks 2 of the 64 training videos"):
        build(aligned_teacher(root / "t-short", setting["text_model"], short))
    other = own_frames_dataset(root / "other", split.video_ids, encoder="third-encoder")
    with pytest.raises(ConfigError, match="third-encoder"):
        build(aligned_teacher(root / "t-other", setting["text_model"], other))

    # live teachers run on the batch's (student's) frames: a teacher with its own is refused, and so is loading it
    with pytest.raises(ConfigError, match=r"teachers\.cache: true"):
        build(setting["teacher"], cache=False)
    with pytest.raises(CheckpointError, match="other-frames"):
        load_teachers([setting["teacher"]], 16, frame_encoder=setting["student"])
