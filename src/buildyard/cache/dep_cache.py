"""Dependency caches (``cache:`` on a job): directories restored before a job and saved after it.

Semantics of actions/cache and GitLab CI: the key is ``<prefix>-<hash of key files>`` (or a literal
key); restore tries the exact key first, then each ``restore_keys`` prefix, newest entry first;
``policy`` is ``pull`` (restore only), ``push`` (save only) or ``pull-push``; a save happens only
when the exact key missed (entries are immutable once written).

The directories are archived as one tar stream stored as a CAS blob (so zstd-compressed and
verified like every blob); the entry is a ref file in namespace ``deps``. Extraction uses tarfile's
``data`` filter: no absolute paths, no ``..``, no links leaving the workspace; and an archive member
must lie under one of the job's declared ``paths`` (given by the caller, not the entry) and outside
``.git``/``.buildyard``, else the entry is refused (:class:`UnsafePathError`) and deleted.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from blake3 import blake3

from buildyard.cache.pathsafe import UnsafePathError, check_relpath, is_protected, safe_destination
from buildyard.cache.store import CacheStore
from buildyard.errors import UsageError
from buildyard.fsutil import atomic_write_bytes

DEPS_NAMESPACE = "deps"


class CachePolicy(StrEnum):
    """When a dependency cache is restored and saved."""

    PULL = "pull"
    PUSH = "push"
    PULL_PUSH = "pull-push"

    @property
    def pulls(self) -> bool:
        """True if the cache is restored before the job."""
        return self in (CachePolicy.PULL, CachePolicy.PULL_PUSH)

    @property
    def pushes(self) -> bool:
        """True if the cache is saved after the job succeeds."""
        return self in (CachePolicy.PUSH, CachePolicy.PULL_PUSH)


def dependency_cache_key(
    *, files: Mapping[str, str | None] | None = None, prefix: str = "", key: str = ""
) -> str:
    """The cache key: ``key`` as is, or ``<prefix>-<hash>`` over ``files`` (path -> digest, None if absent).

    Without any key file present GitLab falls back to ``default``; so does this (prefixed).
    """
    if key:
        return key
    if not files or all(d is None for d in files.values()):
        return f"{prefix}-default" if prefix else "default"
    hasher = blake3(b"buildyard-depcache-v1\0")
    for path in sorted(files):
        hasher.update(f"{path}\0{files[path] or '-'}\n".encode())
    digest = hasher.hexdigest()[:40]
    return f"{prefix}-{digest}" if prefix else digest


@dataclass(frozen=True, slots=True)
class DepRestore:
    """Outcome of a restore: the requested key, the key actually restored (None: miss), exact or not."""

    key: str
    matched_key: str | None
    exact: bool
    paths: tuple[str, ...] = ()

    @property
    def hit(self) -> bool:
        """True if anything was restored."""
        return self.matched_key is not None


def _check_member(name: str, allowed: Sequence[str] | None) -> None:
    """Refuse an archive member outside the declared ``allowed`` paths or in a protected directory."""
    norm = check_relpath(name)
    if is_protected(norm):
        raise UnsafePathError(f"dependency cache entry writes protected path {norm!r}")
    if allowed is not None and not any(norm == a or norm.startswith(a + "/") for a in allowed):
        raise UnsafePathError(f"dependency cache entry writes {norm!r}, outside the job's cache paths")


def _points_outside(member: tarfile.TarInfo) -> bool:
    """A symlink whose target is absolute or climbs out of the directory it is in."""
    if not member.issym():
        return False
    target = member.linkname
    if target.startswith("/"):
        return True
    depth = member.name.rstrip("/").count("/")
    for part in target.split("/"):
        depth += -1 if part == ".." else 0 if part in ("", ".") else 1
        if depth < 0:
            return True
    return False


def _check_outward_links(members: Sequence[tarfile.TarInfo]) -> None:
    """Refuse an archive that writes anything beneath a symlink pointing outside the workspace."""
    outward = {m.name.rstrip("/") for m in members if _points_outside(m)}
    if not outward:
        return
    for member in members:
        parts = member.name.rstrip("/").split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in outward:
                raise UnsafePathError(
                    f"dependency cache entry writes {member.name!r} through a symlink leaving the workspace"
                )


def _extract_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's ``data`` filter, except that a symlink may point outside the workspace.

    A Python virtual environment links ``bin/python`` to the interpreter it was made with (an
    absolute path; ``python3 -> python`` then resolves outside too), which actions/cache users
    expect to restore. A link is restored as a leaf only: nothing is extracted through one that
    leaves (:func:`_check_outward_links` before extracting; the ``data`` filter's check of every
    file's real destination, and ``tar``'s of every link's own location, while extracting).
    """
    if member.issym():
        return tarfile.tar_filter(member, dest)
    return tarfile.data_filter(member, dest)


def _marker(workspace: Path, paths: Sequence[str]) -> Path:
    """Where a workspace records which archive its cache ``paths`` were last restored from or saved as."""
    digest = blake3("\0".join(sorted(paths)).encode()).hexdigest()[:32]
    return workspace / ".buildyard" / "depcache" / digest


def _already_there(marker: Path, blob: str, workspace: Path, paths: Sequence[str]) -> bool:
    """True when ``paths`` were restored from (or saved as) ``blob`` here and still exist.

    A fully cached run then restores nothing: extracting a 25,000-file virtualenv over itself takes
    seconds. Delete a cached directory (or the marker) to have it restored again.
    """
    try:
        recorded = marker.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return False
    return recorded == blob and bool(paths) and all(os.path.lexists(workspace / p) for p in paths)


def _remember(marker: Path, blob: str) -> None:
    with contextlib.suppress(OSError):  # only an optimisation: without it the next restore extracts
        marker.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(marker, blob.encode("ascii"))


class DependencyCache:
    """actions/cache-style keyed directory caches over a :class:`CacheStore`."""

    def __init__(self, store: CacheStore) -> None:
        self.store = store

    def _entry(self, key: str) -> dict[str, object] | None:
        return self.store.refs.read(DEPS_NAMESPACE, key)

    def _candidates(self, prefix: str) -> list[tuple[float, str]]:
        found = []
        for ref in self.store.refs.iter_refs(DEPS_NAMESPACE):
            if ref.name.startswith(prefix):
                created = ref.data.get("created", 0.0)
                found.append((float(created) if isinstance(created, int | float) else 0.0, ref.name))
        return sorted(found, reverse=True)

    def restore(
        self,
        *,
        key: str,
        restore_keys: Sequence[str] = (),
        workspace: Path,
        policy: CachePolicy = CachePolicy.PULL_PUSH,
        paths: Sequence[str] | None = None,
    ) -> DepRestore:
        """Restore the entry for ``key``, else the newest entry matching a ``restore_keys`` prefix.

        ``paths``: the job's declared cache paths; an entry holding anything else is refused.
        """
        if not policy.pulls:
            return DepRestore(key=key, matched_key=None, exact=False)
        allowed = [check_relpath(p.rstrip("/")) for p in paths] if paths is not None else None
        if self._extract(key, workspace, allowed) is not None:
            return DepRestore(key=key, matched_key=key, exact=True, paths=self._paths(key))
        for prefix in restore_keys:
            for _created, name in self._candidates(prefix):
                if self._extract(name, workspace, allowed) is not None:
                    return DepRestore(key=key, matched_key=name, exact=False, paths=self._paths(name))
        return DepRestore(key=key, matched_key=None, exact=False)

    def _paths(self, key: str) -> tuple[str, ...]:
        entry = self.store.refs.read(DEPS_NAMESPACE, key, touch=False)
        paths = entry.get("paths") if entry else None
        return tuple(str(p) for p in paths) if isinstance(paths, list) else ()

    def _extract(self, key: str, workspace: Path, allowed: Sequence[str] | None) -> str | None:
        entry = self._entry(key)
        if entry is None:
            return None
        blob = entry.get("archive")
        if not isinstance(blob, str):
            self.store.refs.delete(DEPS_NAMESPACE, key)
            return None
        listed = entry.get("paths")
        paths = tuple(str(p) for p in listed) if isinstance(listed, list) else ()
        marker = _marker(workspace, paths)
        if _already_there(marker, blob, workspace, paths):
            return blob  # this workspace holds exactly this entry already (restored or saved here)
        reader = self.store.cas.open(blob)  # verified before a single byte is extracted
        if reader is None:
            self.store.refs.delete(DEPS_NAMESPACE, key)
            return None
        with reader, tarfile.open(fileobj=reader, mode="r:") as tar:
            members = tar.getmembers()
            try:
                for member in members:
                    _check_member(member.name, allowed)
                    safe_destination(workspace, member.name)
                _check_outward_links(members)
                for member in members:  # a link restored by an earlier run is replaced, not followed
                    if (workspace / member.name).is_symlink():
                        (workspace / member.name).unlink()
                tar.extractall(workspace, members=members, filter=_extract_filter)  # noqa: S202 - members checked above, filtered
            except (UnsafePathError, tarfile.FilterError) as exc:
                self.store.refs.delete(DEPS_NAMESPACE, key)
                if isinstance(exc, UnsafePathError):
                    raise
                raise UnsafePathError(f"dependency cache entry refused: {exc}") from exc
        _remember(marker, blob)
        return blob

    def save(
        self,
        *,
        key: str,
        paths: Sequence[str],
        workspace: Path,
        policy: CachePolicy = CachePolicy.PULL_PUSH,
        restored: DepRestore | None = None,
    ) -> bool:
        """Archive ``paths`` under ``key`` unless the policy forbids it or ``key`` already exists.

        Returns True if a new entry was saved. Paths that do not exist are skipped (as actions/cache
        warns); nothing is saved when none exists.
        """
        if not policy.pushes or (restored is not None and restored.exact):
            return False
        if self.store.refs.read(DEPS_NAMESPACE, key, touch=False) is not None:
            return False  # immutable: the first save of a key wins
        existing: list[str] = []
        for rel in paths:
            try:
                norm = check_relpath(rel.rstrip("/"))
            except UnsafePathError as exc:
                raise UsageError(f"cache path {rel!r} must be relative and inside the workspace") from exc
            if os.path.lexists(workspace / norm):
                existing.append(norm)
        if not existing:
            return False
        with self.store.in_use():  # prune must not delete the archive before the entry names it
            with self.store.cas.writer() as writer:
                with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                    for rel in existing:
                        tar.add(workspace / rel, arcname=rel, recursive=True)
                digest = writer.commit()
            self.store.refs.write(
                DEPS_NAMESPACE,
                key,
                {"archive": digest, "paths": existing, "created": time.time(), "blobs": [digest]},
            )
        _remember(_marker(workspace, existing), digest)
        self.store.enforce_limit()
        return True

    def delete(self, key: str) -> bool:
        """Remove the entry for ``key``."""
        with contextlib.suppress(FileNotFoundError):
            return self.store.refs.delete(DEPS_NAMESPACE, key)
        return False
