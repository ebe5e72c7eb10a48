"""Fixtures of the search tests (defined in tests/searchkit.py, shared with tests/serve)."""


from searchkit import captions, random_checkpoint, synthetic_data, trained_checkpoint  # noqa: F401
