"""A real ``buildyard serve`` process on a free loopback port."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from server_testutil import Server

from by_testutil import CLI, free_port


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start ``buildyard -C ROOT serve ARGS`` (stopped with SIGTERM at teardown); returns once it answers."""
    servers: list[Server] = []

    def start(root: Path | None, *args: str | Path, token: str = "", port: int | None = None) -> Server:
        port = port or free_port()
        output = tmp_path / f"serve-{port}-{len(servers)}.out"
        where = ["-C", str(root)] if root is not None else []
        cmd = [sys.executable, "-c", CLI, *where, "serve", *map(str, args), "--port", str(port)]
        with output.open("w") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)
        server = Server(f"http://127.0.0.1:{port}", proc, cmd, output, token)
        servers.append(server)
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited: {output.read_text()}")
            try:
                if httpx.get(f"{server.url}/openapi.json", timeout=2).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not start: {output.read_text()}")
            time.sleep(0.1)

    yield start
    for server in servers:
        for client in server.clients:
            client.close()
        if server.proc.poll() is None:
            server.proc.send_signal(signal.SIGTERM)
            try:
                server.proc.wait(30)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait()
