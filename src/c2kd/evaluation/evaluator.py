"""Evaluate a dual encoder on one split: text-to-video and video-to-text retrieval per language."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from c2kd.data.dataset import SplitData
from c2kd.evaluation.metrics import (
    MissingRanks,
    TiePolicy,
    positive_mask_from_indices,
    recall_metrics,
    retrieval_ranks,
)
from c2kd.languages import normalize_languages
from c2kd.retrieval import RetrievalModel
from c2kd.similarity import similarity_matrix

METRIC_NAMES: tuple[str, ...] = ("R@1", "R@5", "R@10", "MedR", "MeanR")


def _average(per_language: dict[str, dict[str, float]]) -> dict[str, float]:
    names = next(iter(per_language.values())).keys()
    return {m: sum(v[m] for v in per_language.values()) / len(per_language) for m in names}


class RetrievalEvaluator:
    """Callable returning ``{"t2v": {lang: {R@1, R@5, R@10, MedR, MeanR}, "average": {...}}, "v2t": {...}}``.

    Every caption of the split is a text query (several per video are all used). Videos listed in the split
    without features (``split.missing_video_ids``) count as misses: their captions in text-to-video, themselves in
    video-to-text. For MedR/MeanR, ``missing_ranks="gallery"`` gives them the worst rank of a gallery that held
    them; ``"present"`` computes MedR/MeanR over the ranked queries only (the original's protocol).
    ``tie_policy="optimistic"`` reproduces the original's ranks of tied scores.
    """

    def __init__(self, split: SplitData, languages: Sequence[str] | None = None, tie_policy: TiePolicy = "average",
                 batch_size: int = 256, max_tokens: int | None = None, directions: Sequence[str] = ("t2v", "v2t"),
                 missing_ranks: MissingRanks = "gallery"):
        self.split = split
        self.languages = normalize_languages(languages or split.languages)
        self.tie_policy = tie_policy
        self.missing_ranks = missing_ranks
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.directions = tuple(directions)

    @torch.no_grad()
    def __call__(self, model: RetrievalModel) -> dict:
        was_training = model.training
        model.eval()
        try:
            videos = model.embed_videos([self.split.frames(i) for i in range(len(self.split))], self.batch_size)

            def scores(texts: list[str]) -> torch.Tensor:
                return similarity_matrix(model.embed_texts(texts, self.batch_size, self.max_tokens), videos)

            return self.evaluate_scores(scores)
        finally:
            model.train(was_training)

    def queries(self, lang: str) -> tuple[list[str], list[int]]:
        """The split's captions in ``lang`` and the index of the video each belongs to."""
        texts, owner = [], []
        for i, caps in enumerate(self.split.captions[lang]):
            for c in caps:
                if c is not None:
                    texts.append(c)
                    owner.append(i)
        return texts, owner

    @torch.no_grad()
    def evaluate_scores(self, scores: Callable[[list[str]], torch.Tensor]) -> dict:
        """The metrics of any scorer: ``scores(texts) -> [Q, N]``, N the split's videos in order (for a single
        model, cosines; for several, see :mod:`c2kd.evaluation.fusion`)."""
        results: dict = {d: {} for d in self.directions}
        n_missing_videos = len(self.split.missing_video_ids)
        gallery = len(self.split) + n_missing_videos
        for lang in self.languages:
            texts, owner = self.queries(lang)
            if not texts:
                continue
            sim = scores(texts)  # [Q, N]
            owner_t = torch.tensor(owner)
            if "t2v" in self.directions:
                mask = positive_mask_from_indices(len(texts), len(self.split), owner_t)
                ranks = retrieval_ranks(sim, mask, self.tie_policy)
                results["t2v"][lang] = recall_metrics(
                    ranks, n_missing=self.split.missing_captions.get(lang, 0), missing_rank=gallery,
                    missing_ranks=self.missing_ranks)
            if "v2t" in self.directions:
                mask = positive_mask_from_indices(len(texts), len(self.split), owner_t).T
                ranks = retrieval_ranks(sim.T, mask, self.tie_policy)
                results["v2t"][lang] = recall_metrics(
                    ranks, n_missing=n_missing_videos,
                    missing_rank=len(texts) + self.split.missing_captions.get(lang, 0),
                    missing_ranks=self.missing_ranks)
        for direction in self.directions:
            if results[direction]:
                results[direction]["average"] = _average(results[direction])
        results["protocol"] = {"videos": len(self.split), "missing_videos": n_missing_videos,
                               "tie_policy": self.tie_policy, "missing_ranks": self.missing_ranks,
                               "split": self.split.name}
        return results


def flatten_metrics(results: dict, prefix: str = "") -> dict[str, float]:
    """``{"t2v": {"en": {"R@1": 3}}}`` -> ``{"t2v/en/R@1": 3}`` (numbers only)."""
    flat: dict[str, float] = {}
    for key, value in results.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, f"{name}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat
