"""Helpers shared by test modules (importable: ``tests/`` is on ``sys.path`` under pytest)."""

from __future__ import annotations

from pathlib import Path

import pytest


def shared_osv() -> Path:
    """The real OSV data of ``../shared/data/osv`` (next to the clone; the workplace copy otherwise)."""
    for candidate in (
        Path(__file__).resolve().parents[2] / "shared" / "data" / "osv",
        Path("/work/shared/data/osv"),
    ):
        if candidate.is_dir():
            return candidate
    pytest.skip("../shared/data/osv is not available")
