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


# --- loopback HTTP mirrors (tests/http_mirror.py), added with the datasets module ----------


@pytest.fixture
def http_mirror(tmp_path):
    """An empty :class:`http_mirror.MirrorServer` on 127.0.0.1 serving ``tmp_path / "mirror"``."""
    from http_mirror import MirrorServer

    root = tmp_path / "mirror"
    root.mkdir()
    with MirrorServer(root) as server:
        yield server


@pytest.fixture
def mnist_mirror():
    """A :class:`http_mirror.MirrorServer` serving the real MNIST ``.gz`` files of
    ``../shared/data`` (t10k images and labels, train labels; no training images).
    Skips, saying why, where ``../shared/data`` is missing."""
    from http_mirror import MNIST_TEST_FILES, MirrorServer

    for name in MNIST_TEST_FILES:
        shared_file(f"data/{name}")
    with MirrorServer(SHARED_DIR / "data") as server:
        yield server
