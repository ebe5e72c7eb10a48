"""Frozen teachers and their English text-video scores, computed once (cached) or on every batch (original).

A C2KD step needs, for each of M teachers, the similarity matrix between the teacher's embeddings of the
batch's captions (in English, or in the student's language for the ablation) and of the batch's videos, pooled
into one matrix per student language (the pooler Psi). Teachers are frozen and deterministic in eval mode and
the frames fed to them are deterministic, so every embedding can be computed once before training: a batch then
costs M small matrix products.

A teacher may read *other frame features* than the student: e.g. a larger frame encoder's, or on the Multi30K
proxy e5 vectors of the descriptions where the student reads USE ones. Its checkpoint records its frame encoder;
when that is not the run's, its features of the same videos are read from the dataset its config names (or
``teachers.frames``), so the teacher scores each training pair exactly as it would on its own data.

Every provider is a :class:`TeacherScores`: ``provider(batch, languages) -> language -> [B, B]`` pooled scores
(``provider.matrices(...)`` gives the M matrices before pooling). :func:`build_teacher_scores` makes the one a
run's ``teachers`` section asks for.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, Protocol

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from c2kd.checkpoint import checkpoint_data_path, load_checkpoint
from c2kd.data.dataset import DATASET_FILE, Batch, SplitData
from c2kd.data.features import STORE_FILE, FeatureStore
from c2kd.encoders.frames import (
    FrameEncoderSpec,
    check_frame_encoder,
    describe_parts,
    mismatches,
    parts_of,
    store_frame_encoder,
)
from c2kd.errors import CheckpointError, ConfigError, DataError
from c2kd.languages import ENGLISH
from c2kd.model import DualEncoder
from c2kd.progress import progress_bar
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
    #: frame features of teachers whose frame encoder is not the run's: checkpoint -> a dataset folder (or a
    #: feature store) with the training videos encoded by that teacher's frame encoder. Default: the dataset
    #: named by the teacher's own config (``data.path``)
    frames: dict[str, str] = Field(default_factory=dict)


def load_teacher(path: str | os.PathLike, device: str | torch.device = "cpu") -> DualEncoder:
    """Load a trained teacher strictly, freeze every parameter and put it in eval mode."""
    model, _ = load_checkpoint(path, device=device)
    model.requires_grad_(False)
    return model.eval()


def load_teachers(paths: Sequence[str | os.PathLike], feature_dim: int, device: str | torch.device = "cpu",
                  frame_encoder: FrameEncoderSpec | None = None) -> list[DualEncoder]:
    """Load several teachers that read the run's frame features (``frame_encoder``, ``feature_dim``-d)."""
    teachers = []
    for path in paths:
        teacher = load_teacher(path, device)
        if reads_other_frames(teacher, feature_dim, frame_encoder):
            raise CheckpointError(
                f"teacher {path} reads {_describe(teacher)} frame features but the data has "
                f"{_describe_run(feature_dim, frame_encoder)} ones: train the teacher on the same features, or give "
                "it its own features (teachers.frames, with teachers.cache: true)"
            )
        teachers.append(teacher)
    return teachers


def _describe(teacher: DualEncoder) -> str:
    parts = teacher.frame_encoder
    return describe_parts(parts) if parts else f"{teacher.feature_dim}-d"


def _describe_run(feature_dim: int, frame_encoder: FrameEncoderSpec | None) -> str:
    return frame_encoder.describe() if frame_encoder is not None else f"{feature_dim}-d"


def reads_other_frames(teacher: DualEncoder, feature_dim: int, frame_encoder: FrameEncoderSpec | None) -> bool:
    """Whether ``teacher`` reads other frame features than a run whose features are ``frame_encoder`` /
    ``feature_dim``-d (by the recorded encoders when both are known, else by size)."""
    own, run = teacher.frame_encoder, parts_of(frame_encoder)
    if own and run:
        return bool(mismatches(run, own))
    return teacher.feature_dim != feature_dim


def teacher_feature_store(path: str | os.PathLike, teacher: DualEncoder, video_ids: Sequence[str],
                          where: str | os.PathLike | None = None) -> FeatureStore:
    """The features of ``video_ids`` made by ``teacher``'s own frame encoder.

    ``where``: a dataset folder or a feature store; default: the dataset of the teacher's config (``data.path``).
    Raises ``DataError`` (naming the folder and the fix) when it is absent, made by another encoder, or lacks videos.
    """
    parts = teacher.frame_encoder
    wanted = _describe(teacher)
    fix = (f"encode the training videos with {wanted} (e.g. `c2kd extract --checkpoint {path}`, or "
           f"`c2kd multi30k-proxy --frame-encoder {parts[0].name if parts else 'NAME'}` for the proxy) and give the folder "
           f"as teachers.frames[{str(path)!r}]")
    if where is None:
        where = checkpoint_data_path(path)
        if not where or not Path(where).is_dir():
            raise DataError(f"teacher {path} reads {wanted} frame features, not the run's, and its config names no "
                            f"dataset folder that exists ({where!r}): {fix}")
    root = Path(where)
    if (root / DATASET_FILE).exists():
        root = root / json.loads((root / DATASET_FILE).read_text()).get("features", "features")
    if not (root / STORE_FILE).exists():
        raise DataError(f"{root} holds no frame features ({STORE_FILE} is missing) for teacher {path}: {fix}")
    store = FeatureStore(root)
    if store.dim != teacher.feature_dim:
        raise DataError(f"{root} holds {store.dim}-d features but teacher {path} reads "
                        f"{teacher.feature_dim}-d ones: {fix}")
    check_frame_encoder(parts, store_frame_encoder(store.meta), str(root), fix=fix)
    missing = [v for v in video_ids if v not in store]
    if missing:
        raise DataError(f"{root} lacks {len(missing)} of the {len(video_ids)} training videos for teacher {path} "
                        f"(e.g. {missing[0]!r}): {fix}")
    return store


class TeacherScores(Protocol):
    """Gives, for a batch, the teachers' pooled similarity matrix per student language."""

    def __call__(self, batch: Batch, languages: Sequence[str]) -> dict[str, Tensor]:
        """Shape: -> language -> [B, B]"""
        ...

    def structure(self, batch: Batch, languages: Sequence[str]) -> dict[str, Tensor]:
        """Shape: -> ``video`` / ``text/<lang>`` -> [B, B] (pooled similarities among videos, among captions)"""
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

    def embeddings(self, batch: Batch, languages: Sequence[str]) -> tuple[Tensor, dict[str, Tensor]]:
        """The teachers' unit embeddings of the batch: videos [M, B, D] and, per student language, the captions
        they read for it [M, B, D] (structure distillation)."""
        raise NotImplementedError(f"{type(self).__name__} gives no teacher embeddings")

    @torch.no_grad()
    def structure(self, batch: Batch, languages: Sequence[str]) -> dict[str, Tensor]:
        """The teachers' similarity structure among the batch's videos (``video``) and among the captions they
        read for each language (``text/<lang>``), pooled over the M teachers like the scores.

        Shape: -> ``video`` / ``text/<lang>`` -> [B, B]
        """
        video, texts = self.embeddings(batch, languages)
        out = {"video": pool_teacher_scores(video @ video.transpose(1, 2), self.pooler)}
        for lang, text in texts.items():
            out[f"text/{lang}"] = pool_teacher_scores(text @ text.transpose(1, 2), self.pooler)
        return out


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
    def embeddings(self, batch: Batch, languages: Sequence[str]) -> tuple[Tensor, dict[str, Tensor]]:
        """Shape: -> videos [M, G, D], language -> captions [M, G, D] (teachers' sizes padded to the largest)"""
        device = batch.frames.device
        videos: list[Tensor] = []
        texts: dict[str, list[Tensor]] = {lang: [] for lang in languages}
        for teacher in self.teachers:
            videos.append(self.gather(teacher.encode_video(batch.frames, batch.mask).float()))
            by_text_lang: dict[str, Tensor] = {}
            for lang in languages:
                tl = _teacher_language(lang, self.teacher_language)
                if tl not in by_text_lang:
                    inputs = teacher.text.prepare(batch.texts[tl], self.max_tokens)
                    by_text_lang[tl] = self.gather(
                        teacher.encode_text({k: v.to(device) for k, v in inputs.items()}).float())
                texts[lang].append(by_text_lang[tl])
        return _stack_padded(videos), {lang: _stack_padded(t) for lang, t in texts.items()}

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


def _stack_padded(embeddings: Sequence[Tensor]) -> Tensor:
    """Stack teachers' embeddings of different sizes, zero-padded to the largest (dot products unchanged).

    Shape:
        M x [N, D_m] -> [M, N, max D_m]
    """
    width = max(e.shape[1] for e in embeddings)
    return torch.stack([torch.nn.functional.pad(e, (0, width - e.shape[1])) for e in embeddings])


class CachedTeacherScores(_PooledScores):
    """Teacher embeddings of every training video and caption, computed once; scores are looked up per batch.

    Memory: M x (videos + captions) x D float16, e.g. 3 teachers x (6.5k + 130k) x 512 x 2 B = 420 MB for
    Multi-MSRVTT with English teachers.

    ``frames``: per teacher, the store of its own frame features (None: the split's, the student's).
    """

    def __init__(self, teachers: Sequence[DualEncoder], split: SplitData, text_languages: Sequence[str],
                 teacher_language: TeacherLanguage = "english", max_tokens: int = 35, batch_size: int = 256,
                 device: str | torch.device = "cpu", progress: bool = True, pooler: Pooler = "min",
                 frames: Sequence[FeatureStore | None] | None = None):
        self.teacher_language = teacher_language
        self.pooler = pooler
        self.n_teachers = len(teachers)
        self._video: Tensor  # [M, N, D]: D is the largest teacher's size, the others padded with zeros
        self._text: dict[str, Tensor] = {}  # lang -> [M, R, D]    (padding leaves every dot product unchanged)
        self._offsets: dict[str, Tensor] = {}  # lang -> [N] first row of each video's captions
        stores = list(frames) if frames is not None else [None] * len(teachers)
        if len(stores) != len(teachers):
            raise ValueError(f"{len(stores)} frame stores for {len(teachers)} teachers")
        features = [split.frames(i) for i in range(len(split))] if None in stores else []  # the run's own
        videos = []
        for teacher, store in progress_bar(zip(teachers, stores), desc="teacher videos", disable=not progress,
                                           unit="teacher", total=len(teachers)):
            teacher.to(device)
            own = features if store is None else [store[v] for v in split.video_ids]
            videos.append(teacher.embed_videos(own, batch_size=batch_size).half())
        self._video = _stack_padded(videos)
        for lang in text_languages:
            rows = split.captions[lang]
            counts = torch.tensor([len(r) for r in rows], dtype=torch.long)
            self._offsets[lang] = torch.cumsum(counts, 0) - counts
            flat = [c if c is not None else "" for r in rows for c in r]
            per_teacher = []
            for teacher in progress_bar(teachers, desc=f"teacher captions ({lang})", disable=not progress,
                                        unit="teacher"):
                per_teacher.append(teacher.embed_texts(flat, batch_size=batch_size, max_tokens=max_tokens).half())
            self._text[lang] = _stack_padded(per_teacher)

    def embeddings(self, batch: Batch, languages: Sequence[str]) -> tuple[Tensor, dict[str, Tensor]]:
        """Shape: -> videos [M, B, D], language -> captions [M, B, D] (on the frames' device)"""
        device = batch.frames.device
        video = self._video[:, batch.video_index].float().to(device)  # [M, B, D]
        texts = {}
        for lang in languages:
            tl = _teacher_language(lang, self.teacher_language)
            rows = self._offsets[tl][batch.video_index] + batch.caption_index
            texts[lang] = self._text[tl][:, rows].float().to(device)  # [M, B, D]
        return video, texts

    def matrices(self, batch: Batch, languages: Sequence[str]) -> dict[str, Tensor]:
        """Shape: -> language -> [M, B, B]"""
        video, texts = self.embeddings(batch, languages)
        return {lang: teacher_scores_from_embeddings(text, video) for lang, text in texts.items()}


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

    def _global(self, batch: Batch) -> Batch:
        """The global batch as the cache reads it: every process's indices (and the device of the frames)."""
        device = batch.frames.device
        video_index = self.gather_indices(batch.video_index.to(device)).cpu()
        caption_index = self.gather_indices(batch.caption_index.to(device)).cpu()
        return Batch(batch.frames, batch.mask, {}, video_index, caption_index)

    def matrices(self, batch: Batch, languages: Sequence[str]) -> dict[str, Tensor]:
        """Shape: -> language -> [M, G, G] with G the global batch size."""
        return self.cached.matrices(self._global(batch), languages)

    def embeddings(self, batch: Batch, languages: Sequence[str]) -> tuple[Tensor, dict[str, Tensor]]:
        """Shape: -> videos [M, G, D], language -> captions [M, G, D]"""
        return self.cached.embeddings(self._global(batch), languages)


def build_teacher_scores(config: TeacherConfig, split: SplitData, feature_dim: int,
                         student_languages: Sequence[str], max_tokens: int, device: torch.device,
                         progress: bool = True, frame_encoder: FrameEncoderSpec | None = None,
                         ) -> CachedTeacherScores | LiveTeacherScores:
    """Load the section's teachers and return a cached (default) or live provider of pooled scores.

    ``frame_encoder`` / ``feature_dim``: the run's frame features. A teacher that reads other features gets its own
    (:func:`teacher_feature_store`); only the cached provider can give them to it.
    """
    teachers, stores = [], []
    for path in config.checkpoints:
        teacher = load_teacher(path, device)
        store = None
        if reads_other_frames(teacher, feature_dim, frame_encoder):
            if not config.cache:
                raise ConfigError(f"teacher {path} reads {_describe(teacher)} frame features, not the run's "
                                  f"{_describe_run(feature_dim, frame_encoder)}: only cached teachers read their "
                                  "own features; set teachers.cache: true")
            store = teacher_feature_store(path, teacher, split.video_ids, config.frames.get(str(path)))
        teachers.append(teacher)
        stores.append(store)
    if not config.cache:
        return LiveTeacherScores(teachers, config.language, max_tokens, pooler=config.pooler)
    text_langs = [ENGLISH] if config.language == "english" else list(student_languages)
    scores = CachedTeacherScores(teachers, split, text_langs, config.language, max_tokens, device=device,
                                 progress=progress, pooler=config.pooler, frames=stores)
    for teacher in teachers:
        teacher.to("cpu")  # embeddings are cached: free the accelerator
    return scores
