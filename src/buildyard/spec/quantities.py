"""Strict parsing of the quantities a pipeline file writes: sizes and percentages (core, pure).

- size: ``512``, ``"512B"``, ``"50MB"`` (decimal, 10^6), ``"1.5GiB"`` (binary, 2^30) -> bytes;
- percentage: ``"5%"``, ``"2.5%"`` or a bare number meaning percent (``90`` is 90%) -> percent.

Anything else (``"5"`` as a string, ``"50mb"``, ``"5 MBs"``, negatives) is rejected with a message
saying what is accepted. Durations use :mod:`buildyard.spec.durations`.
"""

from __future__ import annotations

import math
import re

_SIZE_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s?%")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{value!r} must be a non-negative finite number")
    return float(value)


def parse_size(value: object) -> int:
    """Bytes from ``512``, ``"50MB"`` or ``"1.5GiB"``."""
    number = _number(value)
    if number is not None:
        if number != int(number):
            raise ValueError(f"{value!r}: a size in bytes must be a whole number")
        return int(number)
    if isinstance(value, str):
        match = _SIZE.fullmatch(value.strip())
        if match:
            return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    raise ValueError(f"{value!r} is not a size (use e.g. 512B, 50MB, 1.5GiB)")


def parse_percent(value: object, *, maximum: float | None = 100.0) -> float:
    """Percent from ``"5%"`` or a bare number (``5`` means 5%)."""
    number = _number(value)
    if number is None and isinstance(value, str):
        match = _PERCENT.fullmatch(value.strip())
        if match:
            number = float(match.group(1))
    if number is None:
        raise ValueError(f"{value!r} is not a percentage (use e.g. 5% or 90)")
    if maximum is not None and number > maximum:
        raise ValueError(f"{value!r} is more than {maximum:g}%")
    return number
