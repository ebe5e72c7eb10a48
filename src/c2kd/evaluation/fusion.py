"""Late fusion: several dual encoders scored as one, each reading its own frame features of the same videos.

``score(text, video) = sum_m w_m * cos_m(text, video)``. The members may read different frame encoders (on the
Multi30K proxy: the C2KD student reads USE frames, the e5 pair e5 passages of the same descriptions), so each
member comes with its own split of the same videos. Their errors differ, so the sum ranks better than either:
the usual way of combining experts in text-video retrieval. The weights are chosen on the validation split
(:func:`choose_fusion_weights`) and reported once on test.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from c2kd.data.dataset import SplitData
from c2kd.errors import DataError
from c2kd.evaluation.evaluator import RetrievalEvaluator, flatten_metrics
from c2kd.model import RetrievalModel
from c2kd.similarity import similarity_matrix


class FusedScores:
    """``scores(texts) -> [Q, N]``: the weighted sum of the members' cosine matrices over the split's videos.

    ``splits[m]`` holds member ``m``'s frame features of the same videos, in the same order (refused otherwise).
    Each member's matrix for a list of texts is computed once and kept, so trying other weights
    (:meth:`with_weights`) costs only the sums.
    """

    def __init__(self, models: Sequence[RetrievalModel], splits: Sequence[SplitData], weights: Sequence[float],
                 batch_size: int = 256, max_tokens: int | None = None):
        if not models or len(models) != len(splits):
            raise ValueError(f"late fusion needs one split per member: {len(models)} models, {len(splits)} splits")
        first = splits[0]
        for split in splits[1:]:
            if split.video_ids != first.video_ids or split.missing_video_ids != first.missing_video_ids:
                raise DataError(
                    f"the members' {split.name!r} splits hold different videos ({len(first)} vs {len(split)}, or "
                    "another order): every member must read features of the same items; build each member's "
                    "dataset from the same captions file"
                )
        self.models, self.batch_size, self.max_tokens = list(models), batch_size, max_tokens
        self.weights = _checked_weights(weights, len(models))
        with torch.no_grad():
            self._videos = [model.eval().embed_videos([split.frames(i) for i in range(len(split))], batch_size)
                            for model, split in zip(models, splits, strict=True)]
        self._member_scores: dict[tuple[str, ...], Tensor] = {}

    def with_weights(self, weights: Sequence[float]) -> FusedScores:
        """The same members with other weights, sharing the matrices computed so far."""
        other = object.__new__(FusedScores)
        other.__dict__.update(self.__dict__)
        other.weights = _checked_weights(weights, len(self.models))
        return other

    @torch.no_grad()
    def member_scores(self, texts: list[str]) -> Tensor:
        """Shape: Q texts -> [M, Q, N]"""
        key = tuple(texts)
        if key not in self._member_scores:
            self._member_scores[key] = torch.stack([
                similarity_matrix(model.eval().embed_texts(texts, self.batch_size, self.max_tokens), videos)
                for model, videos in zip(self.models, self._videos, strict=True)])
        return self._member_scores[key]

    def __call__(self, texts: list[str]) -> Tensor:
        """Shape: Q texts -> [Q, N]"""
        weights = torch.tensor(self.weights, dtype=torch.float32)
        return torch.einsum("m,mqn->qn", weights, self.member_scores(texts))


def _checked_weights(weights: Sequence[float], members: int) -> list[float]:
    values = [float(w) for w in weights]
    if len(values) != members:
        raise ValueError(f"{len(values)} weights for {members} members")
    if not all(math.isfinite(w) and w >= 0 for w in values) or not any(values):
        raise ValueError(f"fusion weights must be finite, >= 0 and not all 0, got {values}")
    return values


def choose_fusion_weights(evaluator: RetrievalEvaluator, scores: FusedScores,
                          candidates: Sequence[Sequence[float]], monitor: str = "t2v/average/R@1",
                          ) -> tuple[list[float], dict[tuple[float, ...], float]]:
    """The candidate weights that validate best by ``monitor`` (the first of equals), and every candidate's value.

    ``evaluator`` and ``scores`` are of the validation split; the test split is then scored once with the choice.
    """
    values: dict[tuple[float, ...], float] = {}
    for weights in candidates:
        metrics = flatten_metrics(evaluator.evaluate_scores(scores.with_weights(weights)))
        if monitor not in metrics:
            raise KeyError(f"monitored metric {monitor!r} is not among the validation metrics")
        values[tuple(float(w) for w in weights)] = metrics[monitor]
    best = max(values, key=lambda k: values[k])
    return list(best), values


#: the weights tried for each member after the first (whose weight stays 1) when they are chosen on val
WEIGHT_STEPS: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 3.0)


def weight_grid(members: int, steps: Sequence[float] = WEIGHT_STEPS) -> list[tuple[float, ...]]:
    """Every combination of ``steps`` for the members after the first, the first at weight 1.

    Example: ``weight_grid(2, (0, 1))`` -> ``[(1.0, 0.0), (1.0, 1.0)]``
    """
    return [(1.0, *rest) for rest in itertools.product([float(s) for s in steps], repeat=members - 1)]


def fuse_checkpoints(checkpoints: Sequence[str | Path], datasets: Sequence[str | Path], languages: Sequence[str],
                     split: str = "test", weights: Sequence[float] | None = None, choose_on: str = "val",
                     device: str | torch.device = "cpu", **evaluator_options) -> dict:
    """Load ``checkpoints`` and evaluate their late fusion with :func:`fuse_models`."""
    from c2kd.checkpoint import load_model

    models = [load_model(c, device=device) for c in checkpoints]
    return fuse_models(models, datasets, languages, split, weights, choose_on, [str(c) for c in checkpoints],
                       **evaluator_options)


def fuse_models(models: Sequence[RetrievalModel], datasets: Sequence[str | Path], languages: Sequence[str],
                split: str = "test", weights: Sequence[float] | None = None, choose_on: str = "val",
                names: Sequence[str] | None = None, **evaluator_options) -> dict:
    """Evaluate the late fusion of ``models`` (member ``m`` reads the frames of ``datasets[m]``) on ``split``.

    Without ``weights`` they are chosen on ``choose_on`` (:func:`choose_member_weights`). The results are the
    evaluator's, plus ``"fusion": {"members", "weights", "chosen_on", "validation"}`` (members: ``names``;
    validation: the monitored value of every candidate).
    """
    validation: dict[tuple[float, ...], float] = {}
    if weights is None:
        weights, validation = choose_member_weights(models, datasets, languages, choose_on, **evaluator_options)
    evaluator, scores = _fused_split(models, datasets, languages, split, weights, ("t2v", "v2t"), evaluator_options)
    results = evaluator.evaluate_scores(scores)
    results["fusion"] = {"members": list(names or [f"model {m}" for m in range(len(models))]),
                         "weights": list(scores.weights), "chosen_on": choose_on if validation else None,
                         "validation": [{"weights": list(k), "value": v} for k, v in validation.items()]}
    return results


def choose_member_weights(models: Sequence[RetrievalModel], datasets: Sequence[str | Path],
                          languages: Sequence[str], choose_on: str = "val", **evaluator_options,
                          ) -> tuple[list[float], dict[tuple[float, ...], float]]:
    """The weights of :func:`weight_grid` whose fusion validates best on ``choose_on`` (t2v average R@1), and the
    value of every candidate. Member ``m`` reads the frames of ``datasets[m]``."""
    evaluator, scores = _fused_split(models, datasets, languages, choose_on, [1.0] * len(models), ("t2v",),
                                     evaluator_options)
    return choose_fusion_weights(evaluator, scores, weight_grid(len(models)))


def _fused_split(models: Sequence[RetrievalModel], datasets: Sequence[str | Path], languages: Sequence[str],
                 split: str, weights: Sequence[float], directions: Sequence[str],
                 evaluator_options: dict) -> tuple[RetrievalEvaluator, FusedScores]:
    from c2kd.data.dataset import VideoTextDataset

    if len(models) != len(datasets):
        raise ValueError(f"one dataset per checkpoint: {len(models)} checkpoints, {len(datasets)} datasets")
    splits = [VideoTextDataset(d).split(split, list(languages)) for d in datasets]
    evaluator = RetrievalEvaluator(splits[0], languages, directions=directions, **evaluator_options)
    return evaluator, FusedScores(models, splits, weights, evaluator_options.get("batch_size", 256))
