"""Frozen teachers and their English text-video scores, computed once (cached) or on every batch (original).

A C2KD step needs, for each of M teachers, the similarity matrix between the teacher's embeddings of the
batch's captions (in English, or in the student's language for the ablation) and of the batch's videos, pooled
into one matrix per student language (the pooler Psi). Teachers are frozen and deterministic in eval mode and
the frames fed to them are deterministic, so every embedding can be computed once before training: a batch then
costs M small matrix products.

Every provider is a :class:`TeacherScores`: ``provider(batch, languages) -> language -> [B, B]`` pooled scores
(``provider.matrices(...)`` gives the M matrices before pooling). :func:`build_teacher_scores` makes the one a
run's ``teachers`` section asks for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor
from tqdm.auto import tqdm

from c2kd.checkpoint import load_checkpoint
from c2kd.data.dataset import Batch, SplitData
from c2kd.errors import CheckpointError
from c2kd.languages import ENGLISH
from c2kd.model import DualEncoder
from c2kd.similarity import Pooler, pool_teacher_scores, teacher_scores_from_embeddings

TeacherLanguage = Literal["english", "student"]


class TeacherConfig(BaseModel):
    """The ``teachers`` section of a run's config (used when the loss distills, ``loss.alpha < 1``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    #: checkpoint directories of trained teachers (loaded strictly, frozen, in eval mode)
    checkpoints: list[str] = Field(default_factory=list)
    #: "english": teachers read the English caption of each item (C2KD); "student": the student's language
    language: TeacherLanguage = "english"
    #: element-wise pooling of the teachers' matrices; named for what it computes (the original's names are
    #: swapped: its "min" computes the maximum, see :mod:`c2kd.similarity`)
    pooler: Pooler = "min"
    #: compute teacher embeddings once before training (True) or run teachers on every batch (the original)
    cache: bool = True


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
    """Gives, for a batch, the teachers' pooled similarity matrix per student language."""

    def __call__(self, batch: Batch, languages: Sequence[str]) -> dict[str, Tensor]:
        """Shape: -> language -> [B, B]"""
        ...


def _teacher_language(language: str, teacher_language: str) -> str:
    return ENGLISH if teacher_language == "english" else language


class _PooledScores:
    """``__call__`` pools what ``matrices`` gives (M teacher matrices per language) with ``self.pooler``."""

    pooler: Pooler

    def matrices(self, batch: Batch, languages: Sequence[str]) -> dict[str, Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, batch: Batch, languages: Sequence[str]) -> dict[str, Tensor]:
        """Shape: -> language -> [B, B] (pooled over the M teachers)"""
        return {lang: pool_teacher_scores(scores, self.pooler)
                for lang, scores in self.matrices(batch, languages).items()}


class LiveTeacherScores(_PooledScores):
    """Runs every teacher on every batch, as the original code does (each with its *own* tokenizer and mask).

    ``gather`` (data-parallel training) collects every process's teacher embeddings before the scores are
    computed, so the scores cover the global batch; the default keeps this process's batch.
    """

    def __init__(self, teachers: Sequence[DualEncoder], teacher_language: TeacherLanguage = "english",
                 max_tokens: int = 35, gather: Callable[[Tensor], Tensor] | None = None, pooler: Pooler = "min"):
        self.teachers = list(teachers)
        self.teacher_language = teacher_language
        self.max_tokens = max_tokens
        self.gather = gather or (lambda x: x)
        self.pooler = pooler

    @torch.no_grad()
    def matrices(self, batch: Batch, languages: Sequence[str]) -> dict[str, Tensor]:
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


class CachedTeacherScores(_PooledScores):
    """Teacher embeddings of every training video and caption, computed once; scores are looked up per batch.

    Memory: M x (videos + captions) x D float16, e.g. 3 teachers x (6.5k + 130k) x 512 x 2 B = 420 MB for
    Multi-MSRVTT with English teachers.
    """

    def __init__(self, teachers: Sequence[DualEncoder], split: SplitData, text_languages: Sequence[str],
                 teacher_language: TeacherLanguage = "english", max_tokens: int = 35, batch_size: int = 256,
                 device: str | torch.device = "cpu", progress: bool = True, pooler: Pooler = "min"):
        self.teacher_language = teacher_language
        self.pooler = pooler
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

    def matrices(self, batch: Batch, languages: Sequence[str]) -> dict[str, Tensor]:
        """Shape: -> language -> [M, B, B]"""
        device = batch.frames.device
        video = self._video[:, batch.video_index].float()  # [M, B, D]
        out = {}
        for lang in languages:
            tl = _teacher_language(lang, self.teacher_language)
            rows = self._offsets[tl][batch.video_index] + batch.caption_index
            text = self._text[tl][:, rows].float()  # [M, B, D]
            out[lang] = teacher_scores_from_embeddings(text, video).to(device)
        return out


class GlobalCachedTeacherScores(_PooledScores):
    """Cached teacher scores over the global batch of data-parallel training.

    ``gather_indices`` concatenates every process's ``video_index`` / ``caption_index`` (e.g.
    :func:`c2kd.train.distributed.gather_no_grad`); every process holds the same cache, so the global batch is
    looked up locally. Pools with the wrapped cache's pooler.
    """

    def __init__(self, cached: CachedTeacherScores, gather_indices: Callable[[Tensor], Tensor]):
        self.cached = cached
        self.gather_indices = gather_indices
        self.pooler = cached.pooler

    def matrices(self, batch: Batch, languages: Sequence[str]) -> dict[str, Tensor]:
        """Shape: -> language -> [M, G, G] with G the global batch size."""
        device = batch.frames.device
        video_index = self.gather_indices(batch.video_index.to(device)).cpu()
        caption_index = self.gather_indices(batch.caption_index.to(device)).cpu()
        # the cache reads only the indices and the device of the frames
        view = Batch(batch.frames, batch.mask, {}, video_index, caption_index)
        return self.cached.matrices(view, languages)


def build_teacher_scores(config: TeacherConfig, split: SplitData, feature_dim: int,
                         student_languages: Sequence[str], max_tokens: int, device: torch.device,
                         progress: bool = True) -> CachedTeacherScores | LiveTeacherScores:
    """Load the section's teachers and return a cached (default) or live provider of pooled scores."""
    teachers = load_teachers(config.checkpoints, feature_dim, device)
    if not config.cache:
        return LiveTeacherScores(teachers, config.language, max_tokens, pooler=config.pooler)
    text_langs = [ENGLISH] if config.language == "english" else list(student_languages)
    scores = CachedTeacherScores(teachers, split, text_langs, config.language, max_tokens, device=device,
                                 progress=progress, pooler=config.pooler)
    for teacher in teachers:
        teacher.to("cpu")  # embeddings are cached: free the accelerator
    return scores
