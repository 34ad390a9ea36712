"""Fixtures for cache tests: a real ``buildyard cache serve`` process on a free loopback port.

``CLI`` and ``free_port`` are re-exported for the tests that import them from here."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from by_testutil import CLI, CacheServer, free_port, start_cache_server, stop_cache_server

__all__ = ["CLI", "RO", "RW", "Server", "free_port", "start_server", "stop_server"]

RW, RO = "rw-token-123", "ro-token-456"
Server = CacheServer


def start_server(cache_dir: Path, *extra: str) -> Server:
    """The cache tests' server: a read-write and a read-only token."""
    return start_cache_server(cache_dir, "--token", RW, "--read-token", RO, *extra, read_token=RO)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server started by :func:`start_server`."""
    stop_cache_server(proc)


@pytest.fixture
def cache_server(tmp_path) -> Iterator[Server]:
    server = start_server(tmp_path / "server-cas")
    yield server
    stop_server(server.proc)
