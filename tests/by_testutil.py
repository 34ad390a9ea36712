"""Helpers shared by test modules (importable: ``tests/`` is on ``sys.path`` under pytest)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

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
