"""Retrieval evaluation: metrics on tensors, an evaluator callable, and reports (tables, JSON, seeds)."""

from c2kd.evaluation.metrics import TIE_POLICIES, positive_mask_from_indices, recall_metrics, retrieval_ranks

__all__ = ["TIE_POLICIES", "positive_mask_from_indices", "recall_metrics", "retrieval_ranks"]
