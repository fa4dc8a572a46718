"""Public import path kept for users: everything of :mod:`sparseae.model.train`."""

from sparseae.model.train import *  # noqa: F401,F403
