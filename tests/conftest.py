"""Shared fixtures: where the optional ``../shared`` reference folder is, and skips without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# A developer's and CI's checkout has the fixtures folder beside it; a user's clone does not.
SHARED_DIR = Path(os.environ.get("SPARSEAE_SHARED_DIR", REPO_ROOT.parent / "shared"))


def shared_file(relative: str) -> Path:
    """Return ``../shared/<relative>`` or skip the calling test, saying why."""
    path = SHARED_DIR / relative
    if not path.exists():
        pytest.skip(f"fixture {path} is not available (only developer and CI checkouts have "
                    f"../shared; set SPARSEAE_SHARED_DIR to point elsewhere)")
    return path


@pytest.fixture
def shared_dir() -> Path:
    """The ``../shared`` folder; tests using it skip where it is missing."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is not available (only developer and CI checkouts have it)")
    return SHARED_DIR
