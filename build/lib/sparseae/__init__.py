"""Sparse autoencoders as specified by the UFLDL / CS294A exercises."""

__version__ = "0.1.0"
