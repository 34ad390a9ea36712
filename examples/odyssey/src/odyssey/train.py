"""Train the 2-layer MLP on the spirals with full-batch gradient descent.

``python -m odyssey.train --out model.npz`` trains, prints the accuracy and saves the weights.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from odyssey.data import spirals
from odyssey.kernels import Array, Params, backward, cross_entropy, forward


def init_params(inputs: int, hidden: int, classes: int, *, seed: int = 0) -> Params:
    """He-initialised weights, zero biases."""
    rng = np.random.default_rng(seed)
    return Params(
        w1=rng.normal(0.0, np.sqrt(2.0 / inputs), (inputs, hidden)),
        b1=np.zeros((1, hidden)),
        w2=rng.normal(0.0, np.sqrt(2.0 / hidden), (hidden, classes)),
        b2=np.zeros((1, classes)),
    )


def train(
    x: Array, onehot: Array, *, hidden: int = 64, epochs: int = 2000, lr: float = 1.0, seed: int = 0
) -> tuple[Params, list[float]]:
    """Fit the MLP; returns the parameters and the loss after each epoch."""
    p = init_params(x.shape[1], hidden, onehot.shape[1], seed=seed)
    losses = []
    for _ in range(epochs):
        g = backward(x, onehot, p)
        p = Params(p.w1 - lr * g.dw1, p.b1 - lr * g.db1, p.w2 - lr * g.dw2, p.b2 - lr * g.db2)
        losses.append(cross_entropy(forward(x, p)[1], onehot))
    return p, losses


def accuracy(x: Array, onehot: Array, p: Params) -> float:
    """Share of rows whose most probable class is the true one."""
    predicted = forward(x, p)[1].argmax(axis=1)
    return float(np.mean(predicted == onehot.argmax(axis=1)))


def main(argv: list[str] | None = None) -> int:
    """Command line: train, report, save."""
    parser = argparse.ArgumentParser(prog="odyssey-train", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="where to save the weights (.npz)")
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--min-accuracy", type=float, default=0.9)
    args = parser.parse_args(argv)
    x, onehot = spirals(100, seed=1)
    p, losses = train(x, onehot, epochs=args.epochs)
    acc = accuracy(x, onehot, p)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **p._asdict())
    print(f"trained {args.epochs} epochs: loss {losses[-1]:.4f}, accuracy {acc:.3f} -> {args.out}")
    return 0 if acc >= args.min_accuracy else 1


if __name__ == "__main__":
    raise SystemExit(main())
