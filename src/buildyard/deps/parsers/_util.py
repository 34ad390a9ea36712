"""Helpers shared by lockfile parsers: line lookup in raw text, safe JSON/TOML/YAML loading."""

from __future__ import annotations

import bisect
import json
import re
import tomllib
from typing import Any

from buildyard.deps.errors import LockfileError


class LineIndex:
    """Maps text offsets to 1-based line numbers and finds where a key first appears.

    ``find`` keeps a cursor so that looking keys up in file order costs one pass over the text.
    """

    __slots__ = ("_cursor", "_starts", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._starts = [0]
        pos = text.find("\n")
        while pos != -1:
            self._starts.append(pos + 1)
            pos = text.find("\n", pos + 1)
        self._cursor = 0

    def line_of(self, offset: int) -> int:
        """1-based line number of ``offset``."""
        return bisect.bisect_right(self._starts, offset)

    def find(self, needle: str) -> int:
        """Line of the next occurrence of ``needle`` after the cursor (wrapping once); 0 if absent."""
        pos = self._text.find(needle, self._cursor)
        if pos == -1:
            pos = self._text.find(needle)
            if pos == -1:
                return 0
        self._cursor = pos + len(needle)
        return self.line_of(pos)


def load_json(text: str, file: str) -> Any:
    """Parse JSON, turning a syntax error into a located ``LockfileError``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LockfileError(
            file, f"invalid JSON: {exc.msg} (fix or regenerate the file)", exc.lineno
        ) from exc


def load_toml(text: str, file: str) -> dict[str, Any]:
    """Parse TOML, turning a syntax error into a located ``LockfileError``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+)", str(exc))
        line = int(found.group(1)) if found else 0
        msg = str(exc).split(" (at ")[0]
        raise LockfileError(file, f"invalid TOML: {msg} (fix or regenerate the file)", line) from exc


def load_yaml(
    text: str, file: str, hint: str = "fix or regenerate the file", *, pipeline: bool = False
) -> Any:
    """Parse YAML safely, turning a syntax error into a located ``LockfileError``.

    Alias expansion and nesting are bounded (``spec.yamlpos.check_limits``); a ``pipeline`` file gets
    all the limits of ``buildyard.yml`` (size included), a lockfile only those.
    """
    import yaml  # noqa: PLC0415 - only YAML lockfiles pay for it

    from buildyard.spec.yamlpos import check_limits  # noqa: PLC0415

    exceeded = check_limits(text, file, aliases_only=not pipeline)
    if exceeded is not None:
        raise LockfileError(file, f"{exceeded.message} ({exceeded.hint})", exceeded.line)
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(exc, "problem", None) or "syntax error"
        raise LockfileError(file, f"invalid YAML: {problem} ({hint})", line) from exc


def expect_dict(value: Any, file: str, what: str) -> dict[str, Any]:
    """``value`` if it is a mapping, else a ``LockfileError`` saying ``what`` was expected."""
    if not isinstance(value, dict):
        raise LockfileError(file, f"expected {what} to be a mapping, got {type(value).__name__}")
    return value


def split_hash(value: str) -> tuple[str, str] | None:
    """``"sha256:abc"`` → ``("SHA-256", "abc")``; ``None`` for an unknown form."""
    alg, sep, digest = value.partition(":")
    if not sep:
        alg, sep, digest = value.partition("-")
        if not sep:
            return None
    name = _HASH_NAMES.get(alg.lower())
    return (name, digest) if name else None


_HASH_NAMES = {
    "md5": "MD5",
    "sha1": "SHA-1",
    "sha256": "SHA-256",
    "sha384": "SHA-384",
    "sha512": "SHA-512",
    "blake2b": "BLAKE2b-512",
}
