"""Guards for restoring cached files into a project: an entry writes only the job's declared outputs.

Owns the rules every restore applies to an entry (which may come from an untrusted remote cache):

- a path is relative, without ``..``/NUL, and matched by one of the job's *declared* output patterns
  (given by the caller from the job definition, never taken from the entry);
- no path goes into ``.git`` or ``.buildyard`` (at any depth) or is the pipeline file;
- a regular file's mode is 0644 or 0755 (no setuid, setgid, sticky or group/world-writable bits);
- a symlink's target is relative, stays inside the project and never walks through a symlink;
- nothing is ever written through a symlink: :class:`DirWalker` opens each directory component with
  ``O_NOFOLLOW`` relative to its parent's descriptor, so a symlink planted before or during the
  restore (by the entry itself or anyone else) makes the write fail instead of following it.

It also maps declared output patterns (relative to a job's working directory) to project-relative ones.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import functools
import os
import posixpath
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

from buildyard.errors import BuildyardError

#: Directories a restore never writes into, at any depth.
PROTECTED_DIRS = frozenset({".git", ".buildyard"})
#: Project-root files a restore never writes (the pipeline file).
PROTECTED_ROOT_FILES = frozenset({"buildyard.yml", "buildyard.yaml"})
#: The only modes a restored regular file may have.
ALLOWED_MODES = (0o644, 0o755)


class UnsafePathError(BuildyardError):
    """A cache entry names a path, mode or symlink the job may not restore; the entry is rejected."""


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


def is_protected(rel: str) -> bool:
    """True if the normalized relative path lies in ``.git``/``.buildyard`` or is the pipeline file."""
    parts = rel.split("/")
    return any(p in PROTECTED_DIRS for p in parts) or (len(parts) == 1 and parts[0] in PROTECTED_ROOT_FILES)


def normalize_mode(mode: int) -> int:
    """The mode an output is stored with: 0755 if any execute bit is set, else 0644."""
    return 0o755 if mode & 0o111 else 0o644


def check_symlink(rel: str, target: str) -> None:
    """Reject a symlink at ``rel`` whose ``target`` is absolute or resolves outside the workspace."""
    if not target or target.startswith("/") or "\0" in target:
        raise UnsafePathError(f"symlink {rel!r} -> {target!r} points outside the workspace")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if resolved == ".." or resolved.startswith("../"):
        raise UnsafePathError(f"symlink {rel!r} -> {target!r} points outside the workspace")
    if is_protected(resolved):
        raise UnsafePathError(f"symlink {rel!r} -> {target!r} points into a protected path")


def project_outputs(working_directory: str, patterns: Iterable[str]) -> tuple[str, ...]:
    """Declared output patterns (relative to the job's working directory) made relative to the project."""
    base = working_directory.strip("/")
    out = []
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        if base and body and not body.startswith("/"):
            trailing = "/" if body.endswith("/") else ""
            body = posixpath.normpath(posixpath.join(base, body)) + trailing
        out.append(("!" if negate else "") + body)
    return tuple(out)


@functools.lru_cache(maxsize=512)
def _component_regex(part: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(part))


def _match_parts(pat: Sequence[str], path: Sequence[str]) -> bool:
    """Glob components ``pat`` against ``path`` or any of its ancestors (``**``: any depth)."""
    if not pat:
        return True  # the pattern matched an ancestor directory: everything under it is included
    head = pat[0]
    if head == "**":
        return any(_match_parts(pat[1:], path[i:]) for i in range(len(path) + 1))
    if not path:
        return False
    return bool(_component_regex(head).match(path[0])) and _match_parts(pat[1:], path[1:])


def pattern_matches(pattern: str, rel: str) -> bool:
    """True if output ``pattern`` (as :func:`buildyard.cache.hashing.list_inputs` reads it) covers ``rel``."""
    pat = [p for p in pattern.strip("/").split("/") if p not in ("", ".")]
    return bool(pat) and _match_parts(pat, rel.split("/"))


def declared(rel: str, patterns: Sequence[str]) -> bool:
    """True if ``rel`` is matched by a positive pattern of ``patterns`` and by no ``!`` pattern."""
    positive = [p for p in patterns if not p.startswith("!")]
    negative = [p[1:] for p in patterns if p.startswith("!")]
    return any(pattern_matches(p, rel) for p in positive) and not any(
        pattern_matches(n, rel) for n in negative
    )


def unmatched_patterns(patterns: Sequence[str], paths: Iterable[str]) -> list[str]:
    """The positive patterns of ``patterns`` that cover none of ``paths``."""
    found = list(paths)
    return [p for p in patterns if not p.startswith("!") and not any(pattern_matches(p, r) for r in found)]


def check_entry_paths(
    outputs: Sequence[tuple[str, int | None, str | None]], patterns: Sequence[str]
) -> list[str]:
    """Check ``(path, mode, symlink target)`` of every output of an entry; return the normalized paths.

    Raises :class:`UnsafePathError` naming the first violation (see the module docstring).
    """
    norms = [check_relpath(path) for path, _mode, _target in outputs]
    if len(set(norms)) != len(norms):
        raise UnsafePathError("cache entry names the same path twice")
    links = {norm for norm, (_p, _m, target) in zip(norms, outputs, strict=True) if target is not None}
    paths = set(norms)
    for norm, (_path, mode, target) in zip(norms, outputs, strict=True):
        if is_protected(norm):
            raise UnsafePathError(f"cache entry writes protected path {norm!r}")
        if not declared(norm, patterns):
            raise UnsafePathError(f"cache entry writes {norm!r}, which is not a declared output of the job")
        parents = norm.split("/")[:-1]
        for i in range(1, len(parents) + 1):
            if "/".join(parents[:i]) in paths:
                raise UnsafePathError(
                    f"cache entry writes {norm!r} through its own output {parents[i - 1]!r}"
                )
        if target is not None:
            check_symlink(norm, target)
            _check_target_walk(norm, target, links)
        elif mode not in ALLOWED_MODES:
            raise UnsafePathError(
                f"cache entry restores {norm!r} with mode {oct(mode or 0)} (only 0644/0755)"
            )
    return norms


def _check_target_walk(rel: str, target: str, links: set[str]) -> None:
    """Reject a symlink target that passes through another symlink of the entry (``s/../x``, s a link)."""
    stack = rel.split("/")[:-1]
    parts = [p for p in target.split("/") if p not in ("", ".")]
    for i, part in enumerate(parts):
        if part == "..":
            if not stack:
                raise UnsafePathError(f"symlink {rel!r} -> {target!r} points outside the workspace")
            stack.pop()
            continue
        stack.append(part)
        if i < len(parts) - 1 and "/".join(stack) in links:
            raise UnsafePathError(
                f"symlink {rel!r} -> {target!r} walks through the symlink {'/'.join(stack)!r}"
            )


class DirWalker:
    """Opens directories under a root one component at a time, never following a symlink.

    ``dir_fd(parts, create=True)`` returns a descriptor of ``root/parts...`` (creating missing
    directories 0755); a component that is a symlink or not a directory raises
    :class:`UnsafePathError`. Descriptors are cached for the walker's life; use it as a context manager.
    """

    _FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

    def __init__(self, root: Path) -> None:
        self.root = root
        self._fds: dict[tuple[str, ...], int] = {
            (): os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        }

    def dir_fd(self, parts: Sequence[str], *, create: bool = True) -> int:
        """Descriptor of the directory ``parts`` under the root (see the class docstring)."""
        key = tuple(parts)
        if key in self._fds:
            return self._fds[key]
        parent = self.dir_fd(key[:-1], create=create)
        name = key[-1]
        try:
            fd = os.open(name, self._FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=parent)
            fd = self._open_checked(name, parent, key)
        except OSError as exc:
            raise self._unsafe(key, exc) from exc
        self._fds[key] = fd
        return fd

    def _open_checked(self, name: str, parent: int, key: tuple[str, ...]) -> int:
        try:
            return os.open(name, self._FLAGS, dir_fd=parent)
        except OSError as exc:
            raise self._unsafe(key, exc) from exc

    @staticmethod
    def _unsafe(key: tuple[str, ...], exc: OSError) -> UnsafePathError | OSError:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return UnsafePathError(
                f"{'/'.join(key)!r} is a symlink or a file; a restore never writes through it"
            )
        return exc

    def close(self) -> None:
        """Close every descriptor."""
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()

    def __enter__(self) -> DirWalker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def safe_destination(workspace: Path, rel: str) -> Path:
    """Absolute destination of ``rel`` under ``workspace`` after checking no parent escapes via a symlink.

    Used by the dependency cache (archives extracted with tarfile's ``data`` filter); the job cache
    writes through :class:`DirWalker` instead.
    """
    norm = check_relpath(rel)
    root = os.path.realpath(workspace)
    dest = os.path.join(root, norm)  # noqa: PTH118 - str paths: this runs for every restored file
    parent = os.path.realpath(os.path.dirname(dest))  # noqa: PTH120
    if parent != root and not parent.startswith(root.rstrip("/") + "/"):
        raise UnsafePathError(f"{rel!r} would be written through a symlink that leaves the workspace")
    return Path(dest)
