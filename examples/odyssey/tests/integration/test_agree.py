"""Python ↔ Mojo: the compiled Mojo kernels and the NumPy reference agree numerically.

Needs the binary (``ODYSSEY_KERNELS`` or build/odyssey-kernels); the pipeline builds it first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from odyssey import bench
from odyssey.data import spirals
from odyssey.kernels import backward, forward, matmul, softmax
from odyssey.mojo import MojoError, MojoKernels
from odyssey.train import init_params


@pytest.fixture(scope="module")
def mojo() -> MojoKernels:
    return MojoKernels()


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 2), (17, 9, 33)])
def test_matmul_agrees(mojo: MojoKernels, shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    a, b = rng.normal(size=shape[:2]), rng.normal(size=shape[1:])
    np.testing.assert_allclose(mojo.matmul(a, b), matmul(a, b), rtol=1e-12, atol=1e-12)


def test_softmax_agrees(mojo: MojoKernels) -> None:
    x = np.random.default_rng(9).normal(scale=30.0, size=(6, 11))
    np.testing.assert_allclose(mojo.softmax(x), softmax(x), rtol=1e-12, atol=1e-15)


def test_mlp_forward_and_backward_agree(mojo: MojoKernels) -> None:
    x, onehot = spirals(20, seed=3)
    p = init_params(2, 16, 3, seed=4)
    np.testing.assert_allclose(mojo.forward(x, p), forward(x, p)[1], rtol=1e-10, atol=1e-12)
    for mine, theirs in zip(mojo.backward(x, onehot, p), backward(x, onehot, p), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-12)


def test_mojo_errors_are_reported(mojo: MojoKernels) -> None:
    with pytest.raises(MojoError, match="failed"):
        mojo.matmul(np.ones((2, 3)), np.ones((2, 3)))


def test_bench_writes_both_reports(tmp_path: Path) -> None:
    assert bench.main(["--out", str(tmp_path), "--size", "8", "--rounds", "2"]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"python.json", "mojo.json", "ratio.md"}
    assert "| matmul |" in (tmp_path / "ratio.md").read_text()
