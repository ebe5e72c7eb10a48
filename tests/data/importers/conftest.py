"""Fixtures of the importer tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def shared_data() -> Path:
    root = Path(os.environ.get("C2KD_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not root.exists():
        pytest.skip(f"shared data not found at {root}; set C2KD_SHARED_DATA")
    return root
