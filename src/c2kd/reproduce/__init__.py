"""Reproducing the paper at scale: importers of the authors' data release and caption translation (CLI glue).

The importers live in :mod:`c2kd.data.importers`, machine translation in :mod:`c2kd.translate`; this package
holds their commands (:mod:`c2kd.reproduce.cli`).
"""
