"""The project's own data set: interleaved spirals, one arm per class, generated from a seed."""

from __future__ import annotations

import numpy as np

from odyssey.kernels import Array


def spirals(per_class: int, classes: int = 3, *, noise: float = 0.2, seed: int = 0) -> tuple[Array, Array]:
    """``(x, onehot)``: ``per_class * classes`` points in 2-D and their one-hot class labels."""
    if per_class < 1 or classes < 2:
        raise ValueError("spirals need at least one point per class and two classes")
    rng = np.random.default_rng(seed)
    xs, labels = [], []
    for c in range(classes):
        radius = np.linspace(0.0, 1.0, per_class)
        theta = np.linspace(c * 4.0, (c + 1) * 4.0, per_class) + rng.normal(0.0, noise, per_class)
        xs.append(np.column_stack([radius * np.sin(theta), radius * np.cos(theta)]))
        labels.append(np.full(per_class, c))
    x = np.vstack(xs)
    onehot = np.eye(classes)[np.concatenate(labels)]
    return x, onehot
