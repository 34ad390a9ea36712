"""The text form matrices cross to Mojo in, and the bridge's errors (no Mojo needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from odyssey import bench
from odyssey.mojo import MojoError, MojoKernels, read_matrix, write_matrix


def test_text_form_round_trips_exactly(tmp_path: Path) -> None:
    m = np.random.default_rng(0).normal(size=(3, 4)) * 1e-7
    write_matrix(tmp_path / "m", m)
    np.testing.assert_array_equal(read_matrix(tmp_path / "m"), m)


def test_text_form_rejects_wrong_shapes(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_matrix(tmp_path / "v", np.ones(3))
    (tmp_path / "bad").write_text("2 2\n1.0\n")
    with pytest.raises(MojoError, match="1 values for shape 2x2"):
        read_matrix(tmp_path / "bad")


def test_missing_binary_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(MojoError, match="mojo build"):
        MojoKernels(tmp_path / "nope")


def test_python_samples_and_results_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for kernel in bench.KERNELS:
        samples = bench.python_samples(kernel, 8, 3)
        assert len(samples) == 3 and all(s > 0 for s in samples)
    bench.write_results(tmp_path / "r.json", "numpy", {"matmul": [0.5, 0.25]})
    data = json.loads((tmp_path / "r.json").read_text())
    assert data == {"benchmarks": [{"name": "numpy/matmul", "unit": "s", "samples": [0.5, 0.25]}]}
