"""Retrieval evaluation: metrics on tensors, an evaluator callable, and reports (tables, JSON, seeds).

The names are imported on first use, so that the commands can be listed without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

#: exported name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(("MISSING_RANKS", "TIE_POLICIES", "positive_mask_from_indices", "recall_metrics",
                     "retrieval_ranks"), "c2kd.evaluation.metrics"),
    **dict.fromkeys(("METRIC_NAMES", "RetrievalEvaluator", "flatten_metrics"), "c2kd.evaluation.evaluator"),
    **dict.fromkeys(("aggregate_runs", "markdown_table", "print_results", "table_rows"), "c2kd.evaluation.report"),
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'c2kd.evaluation' has no attribute {name!r}")
