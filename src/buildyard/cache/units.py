"""Parsing of human sizes (``5GB``, ``512MiB``) and ages (``30d``, ``12h``) for cache options. Pure."""

from __future__ import annotations

import re

from buildyard import settings
from buildyard.errors import UsageError

_AGE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_AGE_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str) -> int:
    """Bytes in ``text``: a number with an optional unit (``KB``/``MB``/``GB``/``TB`` are powers of 1000,
    ``KiB``/``MiB``/``GiB``/``TiB`` powers of 1024)."""
    try:
        return settings.parse_size(text)  # one syntax for sizes in options, variables and config files
    except ValueError:
        raise UsageError(f"invalid size {text!r} (expected e.g. 5GB, 512MiB, 1000000)") from None


def parse_age(text: str) -> float:
    """Seconds in ``text``: a number with an optional unit ``s``, ``m``, ``h``, ``d`` or ``w``."""
    match = _AGE_RE.match(text)
    if not match:
        raise UsageError(f"invalid age {text!r} (expected e.g. 30d, 12h, 90m)")
    return float(match[1]) * _AGE_SECONDS[match[2].lower()]


def format_size(n: float) -> str:
    """``n`` bytes for humans (powers of 1024)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
