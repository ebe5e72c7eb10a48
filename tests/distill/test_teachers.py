"""Frozen teachers: loaded strict and in eval mode; cached scores equal live ones (``teachers``: root conftest)."""

import torch

from c2kd.data.dataset import TrainingPairs, VideoTextDataset
from c2kd.distill.teachers import CachedTeacherScores, LiveTeacherScores, load_teachers


def test_teachers_are_frozen_in_eval_mode_and_strict(teachers):
    loaded = load_teachers(teachers, feature_dim=16)
    assert all(not t.training for t in loaded)
    assert all(not p.requires_grad for t in loaded for p in t.parameters())


def test_cached_teacher_scores_equal_live_scores(teachers, tiny_dataset):
    loaded = load_teachers(teachers, feature_dim=16)
    split = VideoTextDataset(tiny_dataset).split("train", ["en", "de"], training=True)
    pairs = TrainingPairs(split, ["en", "de"], max_frames=30)
    batch = pairs.collate([pairs[i] for i in [3, 1, 7, 0]])
    cached = CachedTeacherScores(loaded, split, ["en"], progress=False).matrices(batch, ["de"])
    live = LiveTeacherScores(loaded).matrices(batch, ["de"])
    assert cached["de"].shape == (2, 4, 4)
    assert torch.allclose(cached["de"], live["de"], atol=2e-3)  # the cache keeps float16
    student_lang = CachedTeacherScores(loaded, split, ["de"], "student", progress=False).matrices(batch, ["de"])
    assert torch.allclose(student_lang["de"], LiveTeacherScores(loaded, "student").matrices(batch, ["de"])["de"],
                          atol=2e-3)
    assert not torch.allclose(student_lang["de"], cached["de"], atol=1e-2)


def test_cached_teacher_structure_equals_live_and_plain_products(teachers, tiny_dataset):
    from c2kd.similarity import pool_teacher_scores

    loaded = load_teachers(teachers, feature_dim=16)
    split = VideoTextDataset(tiny_dataset).split("train", ["en", "de"], training=True)
    pairs = TrainingPairs(split, ["en", "de"], max_frames=30)
    batch = pairs.collate([pairs[i] for i in [3, 1, 7, 0]])
    cached = CachedTeacherScores(loaded, split, ["en"], progress=False, pooler="mean").structure(batch, ["de"])
    live = LiveTeacherScores(loaded, pooler="mean").structure(batch, ["de"])
    assert set(cached) == {"video", "text/de"} and cached["video"].shape == (4, 4)
    for key in cached:
        assert torch.allclose(cached[key], live[key], atol=2e-3)
    # a plain computation: each teacher's English captions and videos, their Gram matrices, the mean
    with torch.no_grad():
        videos = [t.encode_video(batch.frames, batch.mask) for t in loaded]
        texts = [t.encode_text(t.text.prepare(batch.texts["en"], 35)) for t in loaded]
    expected_video = pool_teacher_scores(torch.stack([v @ v.T for v in videos]), "mean")
    expected_text = pool_teacher_scores(torch.stack([t @ t.T for t in texts]), "mean")
    assert torch.allclose(live["video"], expected_video, atol=1e-5)
    assert torch.allclose(live["text/de"], expected_text, atol=1e-5)
    assert torch.allclose(torch.diagonal(live["video"]), torch.ones(4), atol=1e-5)
