"""Fixtures of the core tests: the search fixtures (tests/searchkit.py) for the commands that write folders."""

from searchkit import random_checkpoint, synthetic_data  # noqa: F401
