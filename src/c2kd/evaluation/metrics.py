"""Retrieval metrics as functions of tensors: ranks with an explicit tie policy, then R@K, MedR, MeanR."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import torch
from torch import Tensor

#: how a correct item tied with wrong ones is ranked; "optimistic" is what the original code computed
TiePolicy = Literal["optimistic", "pessimistic", "average"]
TIE_POLICIES: tuple[str, ...] = get_args(TiePolicy)
#: MedR/MeanR of queries that could not be ranked (their video has no features): "gallery" gives them the worst
#: rank of a gallery that held them; "present" leaves them out (the original's protocol). Both count them as
#: misses in R@K.
MissingRanks = Literal["gallery", "present"]
MISSING_RANKS: tuple[str, ...] = get_args(MissingRanks)


def positive_mask_from_indices(n_queries: int, n_items: int, positives: Sequence[Sequence[int]] | Tensor) -> Tensor:
    """Boolean [Q, N] mask with ``mask[q, i]`` true when item i is a correct answer to query q.

    ``positives`` is either a [Q] tensor with one correct item per query or a list of index lists.
    """
    mask = torch.zeros(n_queries, n_items, dtype=torch.bool)
    if isinstance(positives, Tensor):
        mask[torch.arange(n_queries), positives.long()] = True
        return mask
    for q, items in enumerate(positives):
        mask[q, list(items)] = True
    return mask


def retrieval_ranks(similarity: Tensor, positive_mask: Tensor, tie_policy: TiePolicy = "average",
                    chunk_size: int = 4096) -> Tensor:
    """1-based rank of the best-scoring correct item for every query.

    A query's rank is one plus the number of *wrong* items scoring above its best correct item. Wrong items
    scoring exactly the same are counted as below it (``optimistic``, what the original code did silently),
    above it (``pessimistic``) or half-and-half (``average``, the expected rank under a random order of ties).
    Queries without any correct item get rank ``N + 1``.

    Shape:
        similarity: [Q, N], positive_mask: [Q, N] bool -> [Q] float
    """
    if similarity.shape != positive_mask.shape:
        raise ValueError(f"similarity {tuple(similarity.shape)} and mask {tuple(positive_mask.shape)} differ")
    if tie_policy not in TIE_POLICIES:
        raise ValueError(f"unknown tie policy {tie_policy!r}; choose one of {TIE_POLICIES}")
    if not torch.isfinite(similarity).all():
        raise ValueError("similarity matrix has NaN or inf values: check the embeddings (features, weights)")
    n_items = similarity.shape[1]
    ranks = []
    for start in range(0, similarity.shape[0], chunk_size):
        sim = similarity[start:start + chunk_size].float()
        pos = positive_mask[start:start + chunk_size].to(sim.device)
        best = sim.masked_fill(~pos, float("-inf")).amax(dim=1, keepdim=True)  # [q, 1]
        negatives = ~pos
        above = ((sim > best) & negatives).sum(dim=1).float()
        tied = ((sim == best) & negatives).sum(dim=1).float()
        if tie_policy == "optimistic":
            rank = 1 + above
        elif tie_policy == "pessimistic":
            rank = 1 + above + tied
        else:
            rank = 1 + above + tied / 2
        has_positive = pos.any(dim=1)
        ranks.append(torch.where(has_positive, rank, torch.full_like(rank, n_items + 1)).cpu())
    return torch.cat(ranks) if ranks else torch.zeros(0)


def recall_metrics(ranks: Tensor, n_missing: int = 0, missing_rank: float | None = None,
                   ks: Sequence[int] = (1, 5, 10), missing_ranks: MissingRanks = "gallery") -> dict[str, float]:
    """R@K (percent), median rank and mean rank from per-query ranks.

    ``n_missing`` queries that could not be ranked at all (e.g. their video has no features: 32 of the 1,000
    MSR-VTT test videos) count as misses at every K, so the denominator is ``len(ranks) + n_missing``. For
    MedR/MeanR, ``missing_ranks="gallery"`` gives them ``missing_rank`` (default: the worst rank in a gallery that
    also held them); ``"present"`` computes MedR/MeanR over the ranked queries only, as the original code did.

    Shape:
        ranks: [Q] -> {"R@1", "R@5", "R@10", "MedR", "MeanR"}
    """
    if missing_ranks not in MISSING_RANKS:
        raise ValueError(f"unknown missing-ranks protocol {missing_ranks!r}; choose one of {MISSING_RANKS}")
    present = ranks.float()
    if len(present) + n_missing == 0:
        raise ValueError("no queries to evaluate")
    out = {f"R@{k}": 100.0 * (present <= k).float().sum().item() / (len(present) + n_missing) for k in ks}
    ordered = present
    if n_missing and missing_ranks == "gallery":
        worst = float(missing_rank) if missing_rank is not None else float(present.max().item() if len(present) else 0) + n_missing
        ordered = torch.cat([present, torch.full((n_missing,), worst)])
    if len(ordered) == 0:
        raise ValueError(f"all {n_missing} queries are missing: MedR/MeanR over present queries are undefined")
    out["MedR"] = ordered.median().item() if len(ordered) % 2 else ordered.quantile(0.5).item()
    out["MeanR"] = ordered.mean().item()
    return out
