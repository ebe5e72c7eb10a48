"""Retrieval evaluation: metrics on tensors, an evaluator callable, and reports (tables, JSON, seeds)."""

from c2kd.evaluation.metrics import (
    MISSING_RANKS,
    TIE_POLICIES,
    positive_mask_from_indices,
    recall_metrics,
    retrieval_ranks,
)

__all__ = ["MISSING_RANKS", "TIE_POLICIES", "positive_mask_from_indices", "recall_metrics", "retrieval_ranks"]
from c2kd.evaluation.evaluator import METRIC_NAMES, RetrievalEvaluator, flatten_metrics  # noqa: E402
from c2kd.evaluation.report import aggregate_runs, markdown_table, print_results, table_rows  # noqa: E402

__all__ += ["METRIC_NAMES", "RetrievalEvaluator", "aggregate_runs", "flatten_metrics", "markdown_table",
            "print_results", "table_rows"]
