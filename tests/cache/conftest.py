"""Fixtures for cache tests: a real ``buildyard cache serve`` process on a free loopback port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

# Runs the real CLI entry point in a subprocess.
CLI = "import sys; from buildyard.cli import main; main(sys.argv[1:])"
RW, RO = "rw-token-123", "ro-token-456"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    port: int
    cache_dir: Path
    proc: subprocess.Popen[bytes]


def start_server(cache_dir: Path, *extra: str) -> Server:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CLI,
            "cache",
            "serve",
            "--cache-dir",
            str(cache_dir),
            "--port",
            str(port),
            "--token",
            RW,
            "--read-token",
            RO,
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "server exited")
        try:
            if (
                httpx.get(
                    f"{url}/v8/artifacts/status", headers={"authorization": f"Bearer {RO}"}, timeout=1
                ).status_code
                == 200
            ):
                return Server(url=url, port=port, cache_dir=cache_dir, proc=proc)
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop_server(proc)
    raise RuntimeError("cache server did not start")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()


@pytest.fixture
def cache_server(tmp_path) -> Iterator[Server]:
    server = start_server(tmp_path / "server-cas")
    yield server
    stop_server(server.proc)
