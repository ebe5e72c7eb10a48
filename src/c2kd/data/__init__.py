"""Data: captions in many languages, the frame-feature store, training batches, generators and importers.

Names are imported on first use, so that reading a feature store does not import torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Batch": "c2kd.data.dataset",
    "SplitData": "c2kd.data.dataset",
    "TrainingPairs": "c2kd.data.dataset",
    "VideoTextDataset": "c2kd.data.dataset",
    "save_dataset": "c2kd.data.dataset",
    "FeatureStore": "c2kd.data.features",
    "FeatureStoreWriter": "c2kd.data.features",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'c2kd.data' has no attribute {name!r}")
