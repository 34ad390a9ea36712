"""Streaming-safe masking of secret values in job output.

A secret split across two writes is still masked: the masker holds back the last ``longest - 1``
bytes of each chunk until the next chunk (or ``flush``) decides them. Besides each value it masks its
base64 forms (at the three possible byte alignments, as GitHub Actions does), its URL-encoded form and
each line of a multi-line value. Percent-escapes match in any case (``%2F``, ``%2f``, ``%2F%2b``…):
each ``%XY`` of a pattern matches ``%[Xx][Yy]``, so a match is as long as its pattern and the
held-back length stays exact.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = b"***"
_MIN_DERIVED = 4  # derived forms shorter than this would mask ordinary text


def variants(secret: str) -> set[bytes]:
    """Byte strings to mask for one secret value."""
    raw = secret.encode()
    out: set[bytes] = {raw} if raw else set()
    if "\n" in secret:
        out.update(line.strip().encode() for line in secret.splitlines() if len(line.strip()) >= _MIN_DERIVED)
    for form in (quote(secret, safe=""), quote_plus(secret, safe="")):
        out.add(form.encode())
    if len(raw) >= 3:
        for shift in range(3):
            encoded = base64.b64encode(b"\0" * shift + raw)
            # Drop characters that depend on the neighbouring bytes: the first ``ceil(shift*4/3)``
            # and, unless the value ends on a 3-byte boundary, the last partial group.
            head = (shift * 4 + 2) // 3
            total = shift + len(raw)
            tail = 0 if total % 3 == 0 else 4 - (total % 3) + 1
            core = encoded[head : len(encoded) - tail]
            if len(core) >= _MIN_DERIVED:
                out.add(core)
    return {v for v in out if v}


_ESCAPE = re.compile(rb"%([0-9A-Fa-f])([0-9A-Fa-f])")


def _any_case(digit: bytes) -> bytes:
    return b"[" + digit.upper() + digit.lower() + b"]" if digit.isalpha() else digit


def _fragment(pattern: bytes) -> bytes:
    """The regex of one pattern: literal, except that percent-escapes match in either case."""
    return _ESCAPE.sub(lambda m: b"%" + _any_case(m[1]) + _any_case(m[2]), re.escape(pattern))


class Masker:
    """Masks secrets in a byte stream fed in arbitrary chunks."""

    def __init__(self, secrets: Iterable[str]) -> None:
        patterns: set[bytes] = set()
        for secret in secrets:
            if secret:
                patterns |= variants(secret)
        self._pending = b""
        if patterns:
            ordered = sorted(patterns, key=len, reverse=True)
            self._regex: re.Pattern[bytes] | None = re.compile(b"|".join(_fragment(p) for p in ordered))
            self._keep = max(len(p) for p in ordered) - 1
        else:
            self._regex = None
            self._keep = 0

    @property
    def active(self) -> bool:
        """False when there is nothing to mask (output passes through untouched)."""
        return self._regex is not None

    def feed(self, chunk: bytes) -> bytes:
        """Return the masked output that is safe to emit now."""
        if self._regex is None:
            return chunk
        buf = self._pending + chunk
        cut = max(len(buf) - self._keep, 0)
        out: list[bytes] = []
        pos = 0
        for m in self._regex.finditer(buf):
            if m.start() >= cut:
                break
            out.append(buf[pos : m.start()])
            out.append(MASK)
            pos = m.end()
            cut = max(cut, pos)
        out.append(buf[pos:cut])
        self._pending = buf[cut:]
        return b"".join(out)

    def flush(self) -> bytes:
        """Emit whatever is held back, masked."""
        if self._regex is None:
            return b""
        rest, self._pending = self._pending, b""
        return self._regex.sub(MASK, rest)

    def mask_text(self, text: str) -> str:
        """Mask a complete string (for messages, JSON output and history fields)."""
        if self._regex is None or not text:
            return text
        return self._regex.sub(MASK, text.encode()).decode(errors="replace")
