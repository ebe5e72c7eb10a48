"""Data: captions in many languages, the frame-feature store, training batches, generators and importers."""

from c2kd.data.dataset import Batch, SplitData, TrainingPairs, VideoTextDataset, save_dataset
from c2kd.data.features import FeatureStore, FeatureStoreWriter

__all__ = [
    "Batch",
    "FeatureStore",
    "FeatureStoreWriter",
    "SplitData",
    "TrainingPairs",
    "VideoTextDataset",
    "save_dataset",
]
