"""Defaults that command-line options show in their help, kept in a module with no heavy imports (no numpy,
pydantic or torch) so that ``c2kd --help`` and ``c2kd COMMAND --help`` start at once. The modules they belong
to import them from here."""

from __future__ import annotations

#: the moment windows (:class:`c2kd.search.windows.Windows`) of an index, of ``c2kd moments`` and of the HTTP API:
#: window lengths (seconds) and stride (a fraction of each length), chosen on the validation split of
#: ``bench/bench_long_video.py``; defined here only
INDEX_LENGTHS = (2.0, 4.0, 8.0)
INDEX_STRIDE = 0.5
#: a video at most this long (seconds) stays one whole-clip entry, as a dataset clip (MSR-VTT's last up to 30 s)
WHOLE_UP_TO = 32.0
#: the text backbone that encodes the Multi30K proxy's "frames" (:mod:`c2kd.data.multi30k`)
PROXY_FRAME_ENCODER = "packaged-muse"
#: the names of the ``-o`` settings of an index and of each backend, as ``c2kd index build/search --help`` lists
#: them. The backends declare them (``Backend.OPTIONS``, :mod:`c2kd.index.options`); they are named again here so
#: that the help needs no backend module (and so no numpy), and a test keeps the two equal.
INDEX_OPTION_NAMES: dict[str, tuple[str, ...]] = {
    "index": ("candidates_per_hit",),
    "exact": ("chunk",),
    "faiss": ("kind", "nlist", "nprobe", "train_sample", "m", "nbits", "M", "ef_construction", "ef_search"),
    "qdrant": ("collection", "url", "location"),
    "milvus": ("uri", "collection", "index_type", "nlist", "nprobe"),
}
