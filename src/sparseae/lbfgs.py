"""Public import path kept for users: everything of :mod:`sparseae.model.lbfgs`."""

from sparseae.model.lbfgs import *  # noqa: F401,F403
