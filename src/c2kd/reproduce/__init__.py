"""Reproducing the paper's experiments: recipes (one per table or figure), their runner and ``c2kd reproduce``.

The data they train on comes from :mod:`c2kd.data` (the authors' release imported, captions machine-translated).
"""
