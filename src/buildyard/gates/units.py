"""Formatting of the quantities gates report: sizes and benchmark times.

Parsing (``parse_size``, ``parse_percent``) belongs to the pipeline file and lives in
:mod:`buildyard.spec.quantities`; it is re-exported here for the gates' callers.
"""

from __future__ import annotations

from buildyard.spec.quantities import parse_percent, parse_size

__all__ = ["format_size", "format_time", "parse_percent", "parse_size"]


def format_size(size: float) -> str:
    """Human-readable decimal size (``52.4MB``)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(size) < 1000 or unit == "GB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1000
    return f"{size:.1f}GB"  # pragma: no cover - loop always returns


def format_time(seconds: float) -> str:
    """A benchmark time with an SI unit (``12.3ms``, ``850ns``)."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g}{unit}"
    return f"{seconds / 1e-9:.3g}ns"
