"""Video indexes: embeddings + metadata on disk, searched exactly (numpy), approximately (faiss) or in Qdrant."""

from c2kd.index.base import BACKENDS, Backend, Hit, make_backend
from c2kd.index.filters import MetadataFilter, normalize_filter, parse_filter_options
from c2kd.index.options import parse_options
from c2kd.index.store import VideoIndex

__all__ = ["BACKENDS", "Backend", "Hit", "MetadataFilter", "VideoIndex", "make_backend", "normalize_filter",
           "parse_filter_options", "parse_options"]
