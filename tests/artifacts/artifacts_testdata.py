"""Constants shared by the artifact tests (a unique module name: tests are not packages)."""

from __future__ import annotations

import os

from buildyard.artifacts.model import BuildInfo

BUILD = BuildInfo(
    builder="test",
    build_time="2026-11-23T12:00:00+00:00",
    commit="a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
    branch="main",
    build_number=57,
    run_id="run-1",
    job_id="package",
    event="push",
)


def random_bytes(n: int) -> bytes:
    return os.urandom(n)
