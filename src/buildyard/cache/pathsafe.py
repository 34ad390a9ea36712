"""Guards for restoring cached files into a workspace: no entry may write outside it.

Owns the checks every restore runs: relative paths only, no ``..``, no NUL, symlink targets that
stay inside the workspace, and no pre-existing symlinked directory that would carry a write out.
"""

from __future__ import annotations

import functools
import os
import posixpath
from pathlib import Path

from buildyard.errors import BuildyardError


class UnsafePathError(BuildyardError):
    """A cache entry names a path (or symlink target) outside the workspace; the entry is rejected."""


def check_relpath(rel: str) -> str:
    """Return ``rel`` normalized if it is a safe relative POSIX path, else raise :class:`UnsafePathError`."""
    if not rel or "\0" in rel or rel.startswith("/") or "\\" in rel:
        raise UnsafePathError(f"unsafe path in cache entry: {rel!r}")
    parts = rel.split("/")
    if any(part == ".." for part in parts):
        raise UnsafePathError(f"path in cache entry leaves the workspace: {rel!r}")
    norm = posixpath.normpath(rel)
    if norm in (".", "") or norm.startswith("../"):
        raise UnsafePathError(f"unsafe path in cache entry: {rel!r}")
    return norm


def check_symlink(rel: str, target: str) -> None:
    """Reject a symlink at ``rel`` whose ``target`` is absolute or resolves outside the workspace."""
    if not target or target.startswith("/") or "\0" in target:
        raise UnsafePathError(f"symlink {rel!r} -> {target!r} points outside the workspace")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if resolved == ".." or resolved.startswith("../"):
        raise UnsafePathError(f"symlink {rel!r} -> {target!r} points outside the workspace")


@functools.lru_cache(maxsize=64)
def _real_root(workspace: str) -> str:
    """The resolved workspace (stable for a process; every destination's parent is resolved afresh)."""
    return os.path.realpath(workspace)


def safe_destination(workspace: Path, rel: str) -> Path:
    """Absolute destination of ``rel`` under ``workspace`` after checking no parent escapes via a symlink."""
    norm = check_relpath(rel)
    root = _real_root(str(workspace))
    dest = os.path.join(root, norm)  # noqa: PTH118 - str paths: this runs for every restored file
    parent = os.path.realpath(os.path.dirname(dest))  # noqa: PTH120
    if parent != root and not parent.startswith(root.rstrip("/") + "/"):
        raise UnsafePathError(f"{rel!r} would be written through a symlink that leaves the workspace")
    return Path(dest)
