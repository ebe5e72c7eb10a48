"""Fixtures of the search tests (defined in searchkit.py, shared with tests/serve)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from searchkit import captions, random_checkpoint, synthetic_data, trained_checkpoint  # noqa: F401
