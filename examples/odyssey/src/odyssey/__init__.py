"""Odyssey: a tiny ML research code base with numeric kernels in NumPy and in Mojo."""

__version__ = "0.3.0"
