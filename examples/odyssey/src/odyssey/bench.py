"""Benchmark every kernel in NumPy and in Mojo on the same shapes.

``python -m odyssey.bench --out bench/`` writes ``python.json`` and ``mojo.json`` in buildyard's
generic benchmark format (one sample per round, in seconds) and ``ratio.md``, the Mojo/NumPy ratio
of the median times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from odyssey.kernels import Array, Params, backward, forward, matmul, softmax
from odyssey.mojo import MojoKernels

KERNELS = ("matmul", "softmax", "forward", "backward")


def _inputs(size: int) -> tuple[Array, Array, Array, Array]:
    rng = np.random.default_rng(7)
    a = rng.uniform(-1.0, 1.0, (size, size))
    b = rng.uniform(-1.0, 1.0, (size, size))
    bias = rng.uniform(-1.0, 1.0, (1, size))
    onehot = np.eye(size)
    return a, b, bias, onehot


def python_samples(kernel: str, size: int, rounds: int) -> list[float]:
    """Seconds per round of the NumPy ``kernel``."""
    a, b, bias, onehot = _inputs(size)
    p = Params(b, bias, b, bias)
    calls: dict[str, Callable[[], object]] = {
        "matmul": lambda: matmul(a, b),
        "softmax": lambda: softmax(a),
        "forward": lambda: forward(a, p),
        "backward": lambda: backward(a, onehot, p),
    }
    call = calls[kernel]
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def write_results(path: Path, prefix: str, results: dict[str, list[float]]) -> None:
    """Write buildyard's generic benchmark JSON."""
    benchmarks = [{"name": f"{prefix}/{name}", "unit": "s", "samples": s} for name, s in results.items()]
    path.write_text(json.dumps({"benchmarks": benchmarks}, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Command line: measure both implementations and write the reports."""
    parser = argparse.ArgumentParser(prog="odyssey-bench", description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    mojo = MojoKernels()
    py = {k: python_samples(k, args.size, args.rounds) for k in KERNELS}
    mj = {k: mojo.bench(k, args.size, args.rounds) for k in KERNELS}
    write_results(args.out / "python.json", "numpy", py)
    write_results(args.out / "mojo.json", "mojo", mj)
    lines = [
        f"# Mojo / NumPy, {args.size}x{args.size}, median of {args.rounds} rounds",
        "",
        "| kernel | numpy (ms) | mojo (ms) | mojo/numpy |",
        "|---|---:|---:|---:|",
    ]
    for k in KERNELS:
        p, m = statistics.median(py[k]), statistics.median(mj[k])
        lines.append(f"| {k} | {p * 1e3:.3f} | {m * 1e3:.3f} | {m / p:.2f} |")
    report = "\n".join(lines) + "\n"
    (args.out / "ratio.md").write_text(report)
    print(report, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
