"""Validation of artifact names, channel names, key names and the relative paths of artifact files.

Everything a user or a bundle supplies passes through here before it touches a path: no ``..``, no
absolute path, no backslash or NUL, no name that could be read as an option or a hidden file.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path

from buildyard.artifacts.errors import UnsafeNameError

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
_KEY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_name(name: str) -> str:
    """An artifact or channel name: lowercase letters, digits, ``.``, ``_``, ``-`` (max 128)."""
    if not _NAME_RE.match(name) or ".." in name:
        raise UnsafeNameError(
            f"invalid artifact name {name!r}: use lowercase letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit)"
        )
    return name


def check_key_name(name: str) -> str:
    """A key name: letters, digits, ``.``, ``_``, ``-`` (max 64)."""
    if not _KEY_NAME_RE.match(name) or ".." in name:
        raise UnsafeNameError(f"invalid key name {name!r}: use letters, digits, '.', '_' and '-'")
    return name


def check_relpath(rel: str) -> str:
    """A file path inside an artifact: relative POSIX, no ``..``, no empty or ``.`` segments."""
    if not rel or "\0" in rel or "\\" in rel or rel.startswith("/") or len(rel) > 4096:
        raise UnsafeNameError(f"unsafe file path in artifact: {rel!r} (must be a relative path)")
    parts = rel.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafeNameError(f"unsafe file path in artifact: {rel!r} (no '.', '..' or empty segments)")
    return rel


def inside(root: Path, rel: str) -> Path:
    """``root / rel`` after checking ``rel`` and that no existing parent is a symlink leaving ``root``."""
    check_relpath(rel)
    real_root = Path(os.path.realpath(root))
    dest = real_root / rel
    parent = Path(os.path.realpath(dest.parent))
    if parent != real_root and real_root not in parent.parents:
        raise UnsafeNameError(f"{rel!r} would be written through a symlink that leaves {root}")
    if dest.is_symlink():
        raise UnsafeNameError(f"{rel!r} is a symlink in {root}; refusing to write through it")
    return dest


def symlink_stays_inside(rel: str, target: str) -> bool:
    """True if a symlink at ``rel`` pointing to ``target`` resolves inside the artifact root."""
    if not target or target.startswith("/") or "\0" in target:
        return False
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    return resolved != ".." and not resolved.startswith("../")
