"""Fixtures of the HTTP service tests (shared with tests/search through searchkit.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "search"))

from searchkit import captions, random_checkpoint, synthetic_data, trained_checkpoint  # noqa: E402,F401
