"""The data set and the training loop: the model learns the spirals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from odyssey import train as train_module
from odyssey.data import spirals
from odyssey.train import accuracy, train


def test_spirals_are_deterministic_and_balanced() -> None:
    x, onehot = spirals(50, 3, seed=5)
    again, _ = spirals(50, 3, seed=5)
    assert x.shape == (150, 2) and onehot.shape == (150, 3)
    np.testing.assert_array_equal(x, again)
    np.testing.assert_array_equal(onehot.sum(axis=0), [50, 50, 50])


def test_spirals_reject_degenerate_sizes() -> None:
    with pytest.raises(ValueError):
        spirals(0)


def test_training_lowers_the_loss_and_fits() -> None:
    x, onehot = spirals(60, seed=2)
    p, losses = train(x, onehot, epochs=800)
    assert losses[-1] < losses[0] / 5
    assert accuracy(x, onehot, p) > 0.9


def test_command_line_saves_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model.npz"
    assert train_module.main(["--out", str(out), "--epochs", "600"]) == 0
    assert set(np.load(out).files) == {"w1", "b1", "w2", "b2"}
    assert "accuracy" in capsys.readouterr().out


def test_command_line_fails_below_the_accuracy_floor(tmp_path: Path) -> None:
    assert (
        train_module.main(["--out", str(tmp_path / "m.npz"), "--epochs", "1", "--min-accuracy", "0.99"]) == 1
    )
