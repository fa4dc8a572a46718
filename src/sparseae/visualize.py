"""Public import path kept for users: everything of :mod:`sparseae.analysis.visualize`."""

from sparseae.analysis.visualize import *  # noqa: F401,F403
