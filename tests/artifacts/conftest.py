"""Fixtures for artifact tests: a key ring with a signing key, a repository, trees of files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from buildyard.artifacts.keys import KeyRing
from buildyard.artifacts.repo import Repository


@pytest.fixture
def keyring(tmp_path: Path) -> KeyRing:
    ring = KeyRing(tmp_path / "keys")
    ring.generate()
    return ring


@pytest.fixture
def repo(tmp_path: Path, keyring: KeyRing) -> Repository:
    return Repository(tmp_path / "repo", keyring=keyring)


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[..., Path]:
    """Write ``{relpath: bytes|str}`` under a fresh directory and return it."""
    counter = iter(range(1000))

    def make(files: dict[str, bytes | str], name: str | None = None) -> Path:
        root = tmp_path / (name or f"tree{next(counter)}")
        for rel, content in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode() if isinstance(content, str) else content)
        root.mkdir(exist_ok=True)
        return root

    return make
