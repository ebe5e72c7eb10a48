"""Ranks and R@K against a plain loop, a hand-made example, tie policies and missing videos."""

import pytest
import torch

from c2kd.evaluation.metrics import positive_mask_from_indices, recall_metrics, retrieval_ranks


def reference_rank(sim_row, positives, policy):
    best = max(sim_row[i] for i in positives)
    above = sum(1 for i, s in enumerate(sim_row) if i not in positives and s > best)
    tied = sum(1 for i, s in enumerate(sim_row) if i not in positives and s == best)
    return {"optimistic": 1 + above, "pessimistic": 1 + above + tied, "average": 1 + above + tied / 2}[policy]


@pytest.mark.parametrize("policy", ["optimistic", "pessimistic", "average"])
@pytest.mark.parametrize("q,n", [(5, 5), (12, 7), (30, 40)])
def test_ranks_match_reference_with_ties(policy, q, n):
    g = torch.Generator().manual_seed(q * n)
    sim = torch.randint(0, 4, (q, n), generator=g).float()  # many ties on purpose
    positives = [sorted({int(torch.randint(0, n, (1,), generator=g)) for _ in range(1 + k % 3)}) for k in range(q)]
    mask = positive_mask_from_indices(q, n, positives)
    ranks = retrieval_ranks(sim, mask, policy, chunk_size=4)
    expected = [reference_rank(sim[k].tolist(), set(positives[k]), policy) for k in range(q)]
    assert ranks.tolist() == expected


def test_hand_made_matrix():
    sim = torch.tensor([[0.9, 0.1, 0.2],   # query 0 -> item 0: rank 1
                        [0.5, 0.4, 0.6],   # query 1 -> item 1: rank 3
                        [0.3, 0.8, 0.8]])  # query 2 -> item 2: tied with item 1
    mask = positive_mask_from_indices(3, 3, torch.tensor([0, 1, 2]))
    assert retrieval_ranks(sim, mask, "optimistic").tolist() == [1, 3, 1]
    assert retrieval_ranks(sim, mask, "pessimistic").tolist() == [1, 3, 2]
    m = recall_metrics(retrieval_ranks(sim, mask, "pessimistic"), ks=(1, 2))
    assert m["R@1"] == pytest.approx(100 / 3) and m["R@2"] == pytest.approx(200 / 3)
    assert m["MedR"] == 2 and m["MeanR"] == 2


def test_missing_videos_count_as_misses():
    ranks = torch.ones(968)
    m = recall_metrics(ranks, n_missing=32, missing_rank=1000)
    assert m["R@1"] == pytest.approx(96.8)
    assert m["MeanR"] == pytest.approx((968 + 32 * 1000) / 1000)


def test_nan_similarity_is_rejected():
    sim = torch.tensor([[float("nan"), 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="NaN"):
        retrieval_ranks(sim, torch.eye(2, dtype=torch.bool))


def reference_protocol(present_ranks, n_missing, gallery, protocol, ks=(1, 5, 10)):
    """Both protocols from their description: missing queries miss at every K (denominator present + missing);
    MedR/MeanR take the gallery size for them ("gallery") or are computed over the present queries ("present")."""
    import statistics

    total = len(present_ranks) + n_missing
    out = {f"R@{k}": 100.0 * sum(1 for r in present_ranks if r <= k) / total for k in ks}
    ranked = list(present_ranks) + ([gallery] * n_missing if protocol == "gallery" else [])
    out["MedR"] = statistics.median(ranked)
    out["MeanR"] = statistics.fmean(ranked)
    return out


@pytest.mark.parametrize("protocol", ["gallery", "present"])
@pytest.mark.parametrize("present,missing,gallery", [(968, 32, 1000), (7, 3, 10), (4, 5, 9), (6, 0, 6)])
def test_missing_query_protocols_match_reference(protocol, present, missing, gallery):
    g = torch.Generator().manual_seed(present + missing)
    ranks = torch.randint(1, gallery - missing + 1, (present,), generator=g).float()
    got = recall_metrics(ranks, n_missing=missing, missing_rank=gallery, missing_ranks=protocol)
    expected = reference_protocol(ranks.tolist(), missing, gallery, protocol)
    assert got == pytest.approx(expected)


def test_present_protocol_differs_from_gallery_only_in_medr_and_meanr():
    ranks = torch.tensor([1.0, 2.0, 3.0])
    gallery = recall_metrics(ranks, n_missing=2, missing_rank=50)
    present = recall_metrics(ranks, n_missing=2, missing_rank=50, missing_ranks="present")
    assert present["R@1"] == gallery["R@1"] == pytest.approx(20.0)
    assert (present["MedR"], present["MeanR"]) == (2.0, 2.0)
    assert (gallery["MedR"], gallery["MeanR"]) == (3.0, pytest.approx(106 / 5))
    with pytest.raises(ValueError, match="missing-ranks"):
        recall_metrics(ranks, missing_ranks="dropped")


def test_one_formatter_writes_results_and_their_spread():
    from c2kd.evaluation.report import format_result

    assert format_result(31.26) == "31.3"
    assert format_result({"mean": 31.26, "std": 1.04, "n": 3}) == "31.3 ± 1.0"
    assert format_result({"mean": 31.26, "std": 0.0, "n": 1}) == "31.3"  # one run has no spread
    assert format_result({"mean": 31.26, "std": 1.04, "n": 3}, precision=2) == "31.26 ± 1.04"
