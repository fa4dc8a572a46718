"""Public import path kept for users: everything of :mod:`sparseae.model.autoencoder`."""

from sparseae.model.autoencoder import *  # noqa: F401,F403
