"""Helpers shared by test modules (importable: ``tests/`` is on ``sys.path`` under pytest)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` with a fixed identity; its stdout."""
    out = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, check=True, capture_output=True, text=True
    )
    return out.stdout


def shared_osv() -> Path:
    """The real OSV data of ``../shared/data/osv`` (next to the clone; the workplace copy otherwise)."""
    for candidate in (
        Path(__file__).resolve().parents[2] / "shared" / "data" / "osv",
        Path("/work/shared/data/osv"),
    ):
        if candidate.is_dir():
            return candidate
    pytest.skip("../shared/data/osv is not available")


# A process that ignores SIGTERM and starts a grandchild that also ignores it; both write their pids.
STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
open(sys.argv[1], "w").write(f"{os.getpid()} {child.pid}")
print("ready", flush=True)
time.sleep(60)
"""


def gone(pid: int, wait: float = 3.0) -> bool:
    """True once ``pid`` is dead (a zombie counts), polling up to ``wait`` seconds for SIGKILL to land."""
    deadline = time.monotonic() + wait
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


#: Runs the real CLI entry point in a subprocess.
CLI = "import sys; from buildyard.cli import main; main(sys.argv[1:])"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class CacheServer:
    """A running ``buildyard cache serve`` process."""

    url: str
    port: int
    cache_dir: Path
    proc: subprocess.Popen[bytes]


def start_cache_server(
    cache_dir: Path, *args: str, read_token: str, env: dict[str, str] | None = None
) -> CacheServer:
    """Start ``buildyard cache serve`` on a free loopback port; return once it answers ``read_token``."""
    port = free_port()
    cmd = [sys.executable, "-c", CLI, "cache", "serve", "--cache-dir", str(cache_dir), "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})}
    )
    url = f"http://127.0.0.1:{port}"
    headers = {"authorization": f"Bearer {read_token}"}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"server exited: {err}")
        try:
            if httpx.get(f"{url}/v8/artifacts/status", headers=headers, timeout=1).status_code == 200:
                return CacheServer(url=url, port=port, cache_dir=cache_dir, proc=proc)
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop_cache_server(proc)
    raise RuntimeError("cache server did not start")


def stop_cache_server(proc: subprocess.Popen[bytes]) -> str:
    """Stop the server (SIGTERM, then SIGKILL); what it wrote on stderr."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    err = proc.stderr.read().decode() if proc.stderr else ""
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()
    return err
