"""The NumPy kernels against definitions written out by hand, and the gradients against finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from odyssey.kernels import Params, backward, cross_entropy, forward, matmul, softmax


def test_matmul_matches_the_definition() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 5))
    expected = [[sum(a[i, k] * b[k, j] for k in range(3)) for j in range(5)] for i in range(4)]
    np.testing.assert_allclose(matmul(a, b), expected, rtol=1e-12)


def test_matmul_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="do not match"):
        matmul(np.ones((2, 3)), np.ones((2, 3)))


def test_softmax_is_a_distribution_and_stable() -> None:
    s = softmax(np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]]))
    np.testing.assert_allclose(s.sum(axis=1), [1.0, 1.0])
    assert s[0].argmax() == 2
    assert s[1, 0] == pytest.approx(1.0)
    assert np.isfinite(s).all()


def _params(seed: int = 0) -> Params:
    rng = np.random.default_rng(seed)
    return Params(
        rng.normal(size=(2, 5)), rng.normal(size=(1, 5)), rng.normal(size=(5, 3)), rng.normal(size=(1, 3))
    )


def test_forward_gives_probabilities_and_relu_hidden() -> None:
    x = np.random.default_rng(1).normal(size=(6, 2))
    hidden, probs = forward(x, _params())
    assert (hidden >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), np.ones(6))


def test_backward_matches_finite_differences() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(7, 2))
    onehot = np.eye(3)[rng.integers(0, 3, 7)]
    p = _params(4)
    grads = backward(x, onehot, p)
    eps = 1e-6
    for name, grad in zip(Params._fields, grads, strict=True):
        value = getattr(p, name)
        for index in np.ndindex(value.shape):
            plus, minus = value.copy(), value.copy()
            plus[index] += eps
            minus[index] -= eps
            lp = cross_entropy(forward(x, p._replace(**{name: plus}))[1], onehot)
            lm = cross_entropy(forward(x, p._replace(**{name: minus}))[1], onehot)
            assert grad[index] == pytest.approx((lp - lm) / (2 * eps), abs=1e-6), (name, index)
