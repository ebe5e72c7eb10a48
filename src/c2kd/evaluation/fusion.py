"""Late fusion evaluated: several dual encoders scored as one, each reading its own frame features of the same
videos.

The members may read different frame encoders (on the Multi30K proxy: the C2KD student reads USE frames, the e5
pair e5 passages of the same descriptions), so each member comes with its own split of the same videos. The
scores are those of :class:`~c2kd.late_fusion.LateFusion` (``sum_m w_m cos_m / sum_m w_m``, computed by
:func:`~c2kd.late_fusion.join`). The weights are chosen on the validation split (:func:`choose_fusion_weights`)
and reported once on test.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from c2kd.data.dataset import SplitData
from c2kd.errors import DataError
from c2kd.evaluation.evaluator import RetrievalEvaluator, flatten_metrics
from c2kd.late_fusion import checked_weights, join
from c2kd.retrieval import RetrievalModel


class LateFusionScores:
    """``scores(texts) -> [Q, N]``: the late fusion of the members' cosines over the split's videos.

    ``splits[m]`` holds member ``m``'s frame features of the same videos, in the same order (refused otherwise).
    Each member's vectors of the videos, and of each list of texts, are computed once and kept, so trying other
    weights (:meth:`with_weights`) costs only the joins.
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
        self.weights = checked_weights(weights, len(models))
        with torch.no_grad():
            self._videos = [model.eval().embed_videos([split.frames(i) for i in range(len(split))], batch_size)
                            for model, split in zip(models, splits, strict=True)]
        self._texts: dict[tuple[str, ...], list[Tensor]] = {}
        self._joined_videos = join(self._videos, self.weights)  # [N, sum E_m], once per set of weights

    def with_weights(self, weights: Sequence[float]) -> LateFusionScores:
        """The same members with other weights, sharing the vectors computed so far."""
        other = object.__new__(LateFusionScores)
        other.__dict__.update(self.__dict__)
        other.weights = checked_weights(weights, len(self.models))
        other._joined_videos = join(self._videos, other.weights)
        return other

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> Tensor:
        """Shape: Q texts -> [Q, N]"""
        key = tuple(texts)
        if key not in self._texts:
            self._texts[key] = [model.eval().embed_texts(texts, self.batch_size, self.max_tokens)
                                for model in self.models]
        return join(self._texts[key], self.weights) @ self._joined_videos.T


def choose_fusion_weights(evaluator: RetrievalEvaluator, scores: LateFusionScores,
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
    from c2kd.formats import load_model

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
                 evaluator_options: dict) -> tuple[RetrievalEvaluator, LateFusionScores]:
    from c2kd.data.dataset import VideoTextDataset

    if len(models) != len(datasets):
        raise ValueError(f"one dataset per checkpoint: {len(models)} checkpoints, {len(datasets)} datasets")
    splits = [VideoTextDataset(d).split(split, list(languages)) for d in datasets]
    evaluator = RetrievalEvaluator(splits[0], languages, directions=directions, **evaluator_options)
    return evaluator, LateFusionScores(models, splits, weights, evaluator_options.get("batch_size", 256))
