"""The optional ``../shared`` folder (real MNIST files, an independent Octave run's results).

A developer's and CI's checkout has it beside the repository; a user's clone does not, so every
helper here skips the calling test with the reason instead of failing.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("SPARSEAE_SHARED_DIR", REPO_ROOT.parent / "shared"))


def shared_file(relative: str) -> Path:
    """Return ``../shared/<relative>`` or skip the calling test, saying why."""
    path = SHARED_DIR / relative
    if not path.exists():
        pytest.skip(
            f"fixture {path} is not available (only developer and CI checkouts have "
            f"../shared; set SPARSEAE_SHARED_DIR to point elsewhere)"
        )
    return path


@functools.cache
def _read_reference(name: str) -> dict[str, np.ndarray]:
    with np.load(SHARED_DIR / "reference" / f"{name}.npz", allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def load_reference(name: str) -> dict[str, np.ndarray]:
    """The arrays of the Octave run's ``reference/<name>.npz`` (read once per session).

    ``sae_small``: a 64 × 25 autoencoder's data, parameters, cost and gradient;
    ``sae_train_small``: parameters minFunc trained (``opttheta``) and the run's settings.
    """
    shared_file(f"reference/{name}.npz")
    return {key: value.copy() for key, value in _read_reference(name).items()}
