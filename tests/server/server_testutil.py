"""Helpers of the server tests (importable: this directory is on sys.path under pytest)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest


@dataclass
class Server:
    """A running server: its URL, process, and an HTTP client (optionally with a token)."""

    url: str
    proc: subprocess.Popen[str]
    args: list[str]
    output: Path
    token: str = ""
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        """An HTTP client of this server (bearer ``token``, else the server's default token)."""
        token = self.token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)
        self.clients.append(client)
        return client

    @property
    def api(self) -> httpx.Client:
        """A client with the default token."""
        return self.client()

    def log(self) -> str:
        """What the server printed."""
        return self.output.read_text()


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``predicate`` until it is truthy (its value), failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def stop(server: Server, sig: int = signal.SIGTERM) -> None:
    """Stop ``server`` with ``sig`` and wait for it."""
    os.kill(server.proc.pid, sig)
    server.proc.wait(30)
