"""Frozen teachers and their English text-video scores, computed once (cached) or on every batch (original).

A C2KD step needs, for each of M teachers, the similarity matrix between the teacher's embeddings of the
batch's captions (in English, or in the student's language for the ablation) and of the batch's videos.
Teachers are frozen and deterministic in eval mode and the frames fed to them are deterministic, so every
embedding can be computed once before training: a batch then costs M small matrix products.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Protocol

import torch
from torch import Tensor
from tqdm.auto import tqdm

from c2kd.checkpoint import load_checkpoint
from c2kd.data.dataset import Batch, SplitData
from c2kd.errors import CheckpointError
from c2kd.model import DualEncoder
from c2kd.similarity import teacher_scores_from_embeddings


def load_teacher(path: str | os.PathLike, device: str | torch.device = "cpu") -> DualEncoder:
    """Load a trained teacher strictly, freeze every parameter and put it in eval mode."""
    model, _ = load_checkpoint(path, device=device)
    model.requires_grad_(False)
    return model.eval()


def load_teachers(paths: Sequence[str | os.PathLike], feature_dim: int, device: str | torch.device = "cpu") -> list[DualEncoder]:
    """Load several teachers and check that they read the same frame features as the student."""
    teachers = []
    for path in paths:
        teacher = load_teacher(path, device)
        if teacher.config.video.feature_dim != feature_dim:
            raise CheckpointError(
                f"teacher {path} reads {teacher.config.video.feature_dim}-d frame features but the data has "
                f"{feature_dim}-d ones: train the teacher on the same features"
            )
        teachers.append(teacher)
    return teachers


class TeacherScores(Protocol):
    """Gives, for a batch, each teacher's similarity matrix per student language."""

    def __call__(self, batch: Batch, languages: Sequence[str]) -> dict[str, Tensor]:
        """Shape: -> language -> [M, B, B]"""
        ...


def _teacher_language(language: str, teacher_language: str) -> str:
    return "en" if teacher_language == "english" else language


class LiveTeacherScores:
    """Runs every teacher on every batch, as the original code does (each with its *own* tokenizer and mask).

    ``gather`` (data-parallel training) collects every process's teacher embeddings before the scores are
    computed, so the scores cover the global batch; the default keeps this process's batch.
    """

    def __init__(self, teachers: Sequence[DualEncoder], teacher_language: str = "english", max_tokens: int = 35,
                 gather: Callable[[Tensor], Tensor] | None = None):
        self.teachers = list(teachers)
        self.teacher_language = teacher_language
        self.max_tokens = max_tokens
        self.gather = gather or (lambda x: x)

    @torch.no_grad()
    def __call__(self, batch: Batch, languages: Sequence[str]) -> dict[str, Tensor]:
        """Shape: -> language -> [M, G, G] (G = B without ``gather``)"""
        device = batch.frames.device
        out: dict[str, list[Tensor]] = {lang: [] for lang in languages}
        for teacher in self.teachers:
            video = self.gather(teacher.encode_video(batch.frames, batch.mask).float())  # [G, D]
            by_text_lang: dict[str, Tensor] = {}
            for lang in languages:
                tl = _teacher_language(lang, self.teacher_language)
                if tl not in by_text_lang:
                    inputs = teacher.text.prepare(batch.texts[tl], self.max_tokens)
                    text = teacher.encode_text({k: v.to(device) for k, v in inputs.items()}).float()
                    by_text_lang[tl] = self.gather(text) @ video.T
                out[lang].append(by_text_lang[tl])
        return {lang: torch.stack(mats) for lang, mats in out.items()}


class CachedTeacherScores:
    """Teacher embeddings of every training video and caption, computed once; scores are looked up per batch.

    Memory: M x (videos + captions) x D float16, e.g. 3 teachers x (6.5k + 130k) x 512 x 2 B = 420 MB for
    Multi-MSRVTT with English teachers.
    """

    def __init__(self, teachers: Sequence[DualEncoder], split: SplitData, text_languages: Sequence[str],
                 teacher_language: str = "english", max_tokens: int = 35, batch_size: int = 256,
                 device: str | torch.device = "cpu", progress: bool = True):
        self.teacher_language = teacher_language
        self.n_teachers = len(teachers)
        self._video: Tensor  # [M, N, D]
        self._text: dict[str, Tensor] = {}  # lang -> [M, R, D]
        self._offsets: dict[str, Tensor] = {}  # lang -> [N] first row of each video's captions
        features = [split.frames(i) for i in range(len(split))]
        videos = []
        for teacher in tqdm(teachers, desc="teacher videos", disable=not progress, unit="teacher"):
            teacher.to(device)
            videos.append(teacher.embed_videos(features, batch_size=batch_size).half())
        self._video = torch.stack(videos)
        for lang in text_languages:
            rows = split.captions[lang]
            counts = torch.tensor([len(r) for r in rows], dtype=torch.long)
            self._offsets[lang] = torch.cumsum(counts, 0) - counts
            flat = [c if c is not None else "" for r in rows for c in r]
            per_teacher = []
            for teacher in tqdm(teachers, desc=f"teacher captions ({lang})", disable=not progress, unit="teacher"):
                per_teacher.append(teacher.embed_texts(flat, batch_size=batch_size, max_tokens=max_tokens).half())
            self._text[lang] = torch.stack(per_teacher)

    def __call__(self, batch: Batch, languages: Sequence[str]) -> dict[str, Tensor]:
        device = batch.frames.device
        video = self._video[:, batch.video_index].float()  # [M, B, D]
        out = {}
        for lang in languages:
            tl = _teacher_language(lang, self.teacher_language)
            rows = self._offsets[tl][batch.video_index] + batch.caption_index
            text = self._text[tl][:, rows].float()  # [M, B, D]
            out[lang] = teacher_scores_from_embeddings(text, video).to(device)
        return out
