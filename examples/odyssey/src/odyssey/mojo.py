"""Run the Mojo kernels from Python: matrices cross as text files (``rows cols`` then one value per line).

The binary is ``build/odyssey-kernels`` (``mojo build mojo/cli.mojo``), or the path in
``ODYSSEY_KERNELS``. Values are written with ``repr`` so they round-trip exactly.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from odyssey.kernels import Array, Grads, Params

DEFAULT_BINARY = Path("build/odyssey-kernels")


class MojoError(RuntimeError):
    """The Mojo binary is missing or failed."""


def write_matrix(path: Path, m: Array) -> None:
    """Write a 2-D array in the text form the Mojo side reads."""
    if m.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {m.shape}")
    values = "\n".join(repr(float(v)) for v in m.ravel())
    path.write_text(f"{m.shape[0]} {m.shape[1]}\n{values}\n")


def read_matrix(path: Path) -> Array:
    """Read the text form written by the Mojo side."""
    lines = path.read_text().split()
    rows, cols = int(lines[0]), int(lines[1])
    values = np.array([float(v) for v in lines[2:]], dtype=np.float64)
    if values.size != rows * cols:
        raise MojoError(f"{path}: {values.size} values for shape {rows}x{cols}")
    return values.reshape(rows, cols)


class MojoKernels:
    """The kernels of :mod:`odyssey.kernels`, computed by the compiled Mojo binary."""

    def __init__(self, binary: Path | None = None) -> None:
        self.binary = binary or Path(os.environ.get("ODYSSEY_KERNELS", DEFAULT_BINARY))
        if not self.binary.is_file():
            raise MojoError(f"no Mojo kernels at {self.binary}: build them with 'mojo build mojo/cli.mojo'")

    def _run(self, op: str, inputs: list[Array], outputs: list[str]) -> list[Array]:
        with tempfile.TemporaryDirectory(prefix="odyssey-") as tmp:
            paths = []
            for i, m in enumerate(inputs):
                path = Path(tmp, f"in{i}")
                write_matrix(path, m)
                paths.append(str(path))
            out = str(Path(tmp, "out"))
            done = subprocess.run(
                [str(self.binary), op, *paths, out], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                raise MojoError(f"{self.binary} {op} failed ({done.returncode}): {done.stderr.strip()}")
            return [read_matrix(Path(out + suffix)) for suffix in outputs]

    def matmul(self, a: Array, b: Array) -> Array:
        """``a @ b`` in Mojo."""
        return self._run("matmul", [a, b], [""])[0]

    def softmax(self, x: Array) -> Array:
        """Row-wise softmax in Mojo."""
        return self._run("softmax", [x], [""])[0]

    def forward(self, x: Array, p: Params) -> Array:
        """Class probabilities of the MLP in Mojo."""
        return self._run("forward", [x, *p], [""])[0]

    def backward(self, x: Array, onehot: Array, p: Params) -> Grads:
        """Gradients of the mean cross-entropy in Mojo."""
        return Grads(*self._run("backward", [x, onehot, *p], [".dw1", ".db1", ".dw2", ".db2"]))

    def bench(self, kernel: str, size: int, rounds: int) -> list[float]:
        """Seconds per round of ``kernel`` on ``size`` x ``size`` inputs, timed inside the binary."""
        done = subprocess.run(
            [str(self.binary), "bench", kernel, str(size), str(rounds)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise MojoError(f"{self.binary} bench {kernel} failed: {done.stderr.strip()}")
        return [float(line) for line in done.stdout.split()]
