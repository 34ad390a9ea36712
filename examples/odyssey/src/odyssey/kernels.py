"""Reference kernels in NumPy: matmul, row-wise softmax, a 2-layer MLP forward and backward pass.

The Mojo kernels (mojo/odyssey_kernels/ops.mojo) compute the same functions; the integration tests
check that both agree numerically.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


class Params(NamedTuple):
    """Weights of the MLP: ``x @ w1 + b1`` → ReLU → ``@ w2 + b2`` → softmax."""

    w1: Array
    b1: Array
    w2: Array
    b2: Array


class Grads(NamedTuple):
    """Gradients of the mean cross-entropy with respect to each parameter."""

    dw1: Array
    db1: Array
    dw2: Array
    db2: Array


def matmul(a: Array, b: Array) -> Array:
    """``a @ b`` for 2-D arrays; a shape mismatch raises ``ValueError``."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match")
    return a @ b


def softmax(x: Array) -> Array:
    """Row-wise softmax, shifted by each row's maximum so large logits do not overflow."""
    shifted = np.exp(x - x.max(axis=1, keepdims=True))
    result: Array = shifted / shifted.sum(axis=1, keepdims=True)
    return result


def forward(x: Array, p: Params) -> tuple[Array, Array]:
    """Hidden activations and class probabilities for the rows of ``x``."""
    hidden = np.maximum(matmul(x, p.w1) + p.b1, 0.0)
    return hidden, softmax(matmul(hidden, p.w2) + p.b2)


def cross_entropy(probs: Array, onehot: Array) -> float:
    """Mean negative log-likelihood of the true classes."""
    picked = np.sum(probs * onehot, axis=1)
    return float(-np.mean(np.log(np.clip(picked, 1e-300, None))))


def backward(x: Array, onehot: Array, p: Params) -> Grads:
    """Gradients of :func:`cross_entropy` of :func:`forward` (the softmax and ReLU derivatives)."""
    hidden, probs = forward(x, p)
    dlogits = (probs - onehot) / x.shape[0]
    dhidden = matmul(dlogits, p.w2.T) * (hidden > 0.0)
    return Grads(
        dw1=matmul(x.T, dhidden),
        db1=dhidden.sum(axis=0, keepdims=True),
        dw2=matmul(hidden.T, dlogits),
        db2=dlogits.sum(axis=0, keepdims=True),
    )
