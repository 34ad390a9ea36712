"""The cache directory as a whole: CAS blobs + ref files, and its maintenance (stats, ls, verify, prune).

Layout of a cache directory (``BUILDYARD_HOME/cas`` or ``--cache-dir``)::

    blobs/<d[:2]>/<digest>              zstd blobs (see buildyard.cache.cas)
    refs/<namespace>/<h[:2]>/<h>.json   one ref file per entry, h = BLAKE3 of the entry's name
    tmp/                                temp files of writers in progress
    events.log                          hit/miss events (one JSON line each), for stats
    salt                                32 random bytes (0600), keys secrets in job keys

A ref file is JSON with at least ``"name"`` and ``"blobs"`` (the digests it keeps alive). Namespaces
owned by the cache (``ac``, ``deps``, ``kv/...``) are evicted least-recently-used by :meth:`CacheStore.prune`;
refs in any other namespace (e.g. the artifact repository's) are never evicted by it but keep their
blobs alive. The mtime of a ref file is its last access (touched on every hit).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blake3 import blake3

from buildyard.cache.cas import CAS, is_digest
from buildyard.errors import UsageError, UserError
from buildyard.fsutil import atomic_write_bytes

#: Top-level namespaces whose entries ``prune`` may evict.
EVICTABLE_NAMESPACES = ("ac", "deps", "kv")
#: Unreferenced blobs younger than this are kept (a concurrent writer may be about to reference them).
GC_GRACE_S = 600.0
_NS_RE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
_EVENTS_TAIL_BYTES = 256 * 1024


class CacheIntegrityError(UserError):
    """``cache verify`` found corrupt blobs or dangling entries (already repaired); exit code 1."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class RefInfo:
    """One ref file as found on disk."""

    namespace: str
    path: Path
    name: str
    blobs: tuple[str, ...]
    last_access: float
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counts and sizes of a cache directory plus recent hit/miss figures."""

    entries: Mapping[str, int]
    blobs: int
    stored_bytes: int
    hits: int
    misses: int
    time_saved_s: float

    @property
    def hit_rate(self) -> float | None:
        """Hits over lookups among recent events, None without events."""
        total = self.hits + self.misses
        return self.hits / total if total else None


@dataclass(slots=True)
class VerifyReport:
    """Result of checking every blob: how many, which were corrupt (evicted), which refs dangled."""

    blobs_checked: int = 0
    corrupt: list[str] = field(default_factory=list)
    dangling_refs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True if nothing was wrong."""
        return not self.corrupt and not self.dangling_refs


@dataclass(slots=True)
class PruneReport:
    """What ``prune`` removed and what is left."""

    refs_removed: int = 0
    blobs_removed: int = 0
    bytes_freed: int = 0
    bytes_left: int = 0
    #: Unreadable refs of other namespaces: while there is one, no unreferenced blob is deleted.
    unreadable_refs: list[Path] = field(default_factory=list)


def _check_namespace(namespace: str) -> None:
    if not _NS_RE.match(namespace):
        raise UsageError(
            f"cache namespace {namespace!r} may only contain letters, digits, '.', '_', '-', '/'"
        )


def safe_namespace_part(value: str) -> str:
    """Map an arbitrary label (a team name) to one valid namespace segment."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", value)[:64].lstrip(".")
    return cleaned or "_"


class RefStore:
    """Ref files: small JSON documents naming the blobs an entry needs, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root / "refs"

    def path(self, namespace: str, name: str) -> Path:
        """File holding the ref ``name`` of ``namespace``."""
        _check_namespace(namespace)
        h = blake3(name.encode()).hexdigest()
        return self.root / namespace / h[:2] / f"{h}.json"

    def write(self, namespace: str, name: str, data: Mapping[str, Any]) -> None:
        """Create or replace a ref; ``data`` must list its blobs under ``"blobs"``."""
        blobs = data.get("blobs")
        if not isinstance(blobs, list) or not all(isinstance(b, str) and is_digest(b) for b in blobs):
            raise ValueError("a ref must list its blob digests under 'blobs'")
        payload = {**data, "name": name}
        atomic_write_bytes(
            self.path(namespace, name), json.dumps(payload, sort_keys=True).encode(), durable=False
        )

    def read(self, namespace: str, name: str, *, touch: bool = True) -> dict[str, Any] | None:
        """The ref's data, or None if absent or unreadable (an unreadable cache entry is removed;
        one of another namespace is kept for its owner to report, see :meth:`kept`)."""
        path = self.path(namespace, name)
        data = self._load(path)
        if data is None or data.get("name") != name:
            return None
        if touch:
            with contextlib.suppress(OSError):
                os.utime(path)
        return data

    def kept(self, path: Path) -> bool:
        """True for a ref outside the cache's own (evictable) namespaces: never deleted when unreadable."""
        try:
            top = path.relative_to(self.root).parts[0]
        except (ValueError, IndexError):
            return True
        return top not in EVICTABLE_NAMESPACES

    def _load(self, path: Path) -> dict[str, Any] | None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("blobs"), list):
            if not self.kept(path):  # a cache entry torn by a power loss: a miss, never an error
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            return None
        return data

    def delete(self, namespace: str, name: str) -> bool:
        """Remove a ref; True if it existed."""
        try:
            self.path(namespace, name).unlink()
        except FileNotFoundError:
            return False
        return True

    def clean_tmp(self, *, older_than_s: float = 3600.0) -> int:
        """Delete temp files of ref writers that were killed; returns how many."""
        removed = 0
        cutoff = time.time() - older_than_s
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for fname in filenames:
                if fname.startswith(".") and fname.endswith(".tmp"):
                    path = Path(dirpath, fname)
                    with contextlib.suppress(FileNotFoundError):
                        if path.stat().st_mtime < cutoff:
                            path.unlink()
                            removed += 1
        return removed

    def iter_refs(
        self, namespace: str | None = None, *, unreadable: list[Path] | None = None
    ) -> Iterator[RefInfo]:
        """Every ref (of ``namespace`` and the namespaces under it, or all); the paths of unreadable
        refs that are kept (see :meth:`kept`) are appended to ``unreadable`` when given."""
        base = self.root / namespace if namespace else self.root
        if not base.is_dir():
            return
        for dirpath, _dirnames, filenames in os.walk(base):
            for fname in filenames:
                if not fname.endswith(".json"):
                    continue
                path = Path(dirpath, fname)
                try:
                    mtime = path.stat().st_mtime
                except FileNotFoundError:
                    continue
                data = self._load(path)
                if data is None:
                    if unreadable is not None and self.kept(path) and path.exists():
                        unreadable.append(path)
                    continue
                ns = Path(dirpath).parent.relative_to(self.root).as_posix()
                yield RefInfo(
                    namespace=ns,
                    path=path,
                    name=str(data.get("name", "")),
                    blobs=tuple(str(b) for b in data["blobs"]),
                    last_access=mtime,
                    data=data,
                )


class CacheStore:
    """A cache directory: the shared :class:`CAS`, the :class:`RefStore`, events and the secret salt."""

    def __init__(self, root: Path, *, durable: bool = False) -> None:
        self.root = root
        self.cas = CAS(root, durable=durable)
        self.refs = RefStore(root)
        self._salt: bytes | None = None
        #: When True, events are kept in memory until :meth:`flush_events` (one write per run).
        self.buffer_events = False
        self._pending_events: list[str] = []

    def salt(self) -> bytes:
        """The per-store 32-byte secret salt (``BUILDYARD_CACHE_SALT`` hex overrides; created 0600 once)."""
        if self._salt is not None:
            return self._salt
        env = os.environ.get("BUILDYARD_CACHE_SALT")
        if env:
            try:
                value = bytes.fromhex(env)
            except ValueError:
                value = b""
            if len(value) != 32:
                raise UsageError("BUILDYARD_CACHE_SALT must be 64 hex characters (32 bytes)")
            self._salt = value
            return value
        path = self.root / "salt"
        try:
            value = path.read_bytes()
        except FileNotFoundError:
            value = b""
        if len(value) != 32:
            self.root.mkdir(parents=True, exist_ok=True)
            candidate = secrets.token_bytes(32)
            try:  # O_EXCL: of two processes creating it at once, exactly one wins and both read its value
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                time.sleep(0.01)
                value = path.read_bytes()
            else:
                with os.fdopen(fd, "wb") as f:
                    f.write(candidate)
                value = candidate
        self._salt = value
        return value

    # -- events ----------------------------------------------------------------------------------
    def record_event(self, event: str, *, key: str = "", saved_s: float = 0.0) -> None:
        """Append a ``hit``/``miss`` event (an O_APPEND write: safe across processes)."""
        line = json.dumps({"t": round(time.time(), 3), "e": event, "k": key[:16], "s": round(saved_s, 3)})
        self._pending_events.append(line + "\n")
        if not self.buffer_events:
            self.flush_events()

    def flush_events(self) -> None:
        """Write the buffered events in one append."""
        if not self._pending_events:
            return
        data, self._pending_events = "".join(self._pending_events).encode(), []
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "events.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def _recent_events(self) -> list[dict[str, Any]]:
        path = self.root / "events.log"
        try:
            with path.open("rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - _EVENTS_TAIL_BYTES))
                tail = f.read()
        except FileNotFoundError:
            return []
        events = []
        for line in tail.splitlines()[1:] if len(tail) == _EVENTS_TAIL_BYTES else tail.splitlines():
            with contextlib.suppress(ValueError):
                item = json.loads(line)
                if isinstance(item, dict):
                    events.append(item)
        return events

    # -- maintenance -----------------------------------------------------------------------------
    def stats(self) -> CacheStats:
        """Entries per namespace, blob count and size, recent hits/misses and time saved."""
        entries: Counter[str] = Counter(ref.namespace for ref in self.refs.iter_refs())
        blobs = 0
        stored = 0
        for _digest, size, _mtime in self.cas.iter_blobs():
            blobs += 1
            stored += size
        events = self._recent_events()
        hits = [e for e in events if e.get("e") == "hit"]
        return CacheStats(
            entries=dict(sorted(entries.items())),
            blobs=blobs,
            stored_bytes=stored,
            hits=len(hits),
            misses=sum(1 for e in events if e.get("e") == "miss"),
            time_saved_s=sum(float(e.get("s", 0.0)) for e in hits),
        )

    def verify(self) -> VerifyReport:
        """Check every blob (corrupt ones are evicted) and drop refs whose blobs are gone."""
        report = VerifyReport()
        for digest, _size, _mtime in list(self.cas.iter_blobs()):
            report.blobs_checked += 1
            if not self.cas.verify(digest):
                report.corrupt.append(digest)
        for ref in self.refs.iter_refs():
            if any(not self.cas.has(d) for d in ref.blobs):
                report.dangling_refs.append(f"{ref.namespace}:{ref.name}")
                if ref.namespace.split("/")[0] in EVICTABLE_NAMESPACES:
                    with contextlib.suppress(FileNotFoundError):
                        ref.path.unlink()
        return report

    def prune(
        self,
        *,
        max_size: int | None = None,
        older_than_s: float | None = None,
        grace_s: float = GC_GRACE_S,
        now: float | None = None,
    ) -> PruneReport:
        """Evict cache entries least-recently-used first, then delete blobs nothing refers to.

        Entries last used more than ``older_than_s`` ago go first; then, while the directory holds
        more than ``max_size`` bytes, the oldest remaining entries. Blobs referenced by no remaining
        ref (in any namespace) and older than ``grace_s`` are deleted.
        """
        now = time.time() if now is None else now
        report = PruneReport()
        refs = list(self.refs.iter_refs(unreadable=report.unreadable_refs))
        refcount: Counter[str] = Counter(d for ref in refs for d in set(ref.blobs))
        blobs = {digest: (size, mtime) for digest, size, mtime in self.cas.iter_blobs()}
        evictable = sorted(
            (r for r in refs if r.namespace.split("/")[0] in EVICTABLE_NAMESPACES),
            key=lambda r: r.last_access,
        )

        young = now - grace_s
        total = sum(size for d, (size, mtime) in blobs.items() if refcount[d] > 0 or mtime >= young)

        def evict(ref: RefInfo) -> int:
            with contextlib.suppress(FileNotFoundError):
                ref.path.unlink()
            report.refs_removed += 1
            freed = 0
            for d in set(ref.blobs):
                refcount[d] -= 1
                if refcount[d] == 0 and d in blobs and blobs[d][1] < young:
                    freed += blobs[d][0]
            return freed

        remaining = []
        for ref in evictable:
            if older_than_s is not None and ref.last_access < now - older_than_s:
                total -= evict(ref)
            else:
                remaining.append(ref)
        if max_size is not None:
            for ref in remaining:
                if total <= max_size:
                    break
                total -= evict(ref)
        for digest, (size, mtime) in blobs.items():
            if report.unreadable_refs:
                break  # an entry that cannot be read may need any blob: keep them all
            if refcount[digest] <= 0 and mtime < young:
                self.cas.evict(digest)
                report.blobs_removed += 1
                report.bytes_freed += size
        report.bytes_left = sum(size for _d, size, _m in self.cas.iter_blobs())
        self.cas.clean_tmp()
        self.refs.clean_tmp()
        self._trim_events()
        return report

    def _trim_events(self) -> None:
        """Keep only the recent tail of ``events.log`` (appends racing the trim may be lost: it is stats)."""
        path = self.root / "events.log"
        try:
            if path.stat().st_size <= 2 * _EVENTS_TAIL_BYTES:
                return
            with path.open("rb") as f:
                f.seek(-_EVENTS_TAIL_BYTES, os.SEEK_END)
                tail = f.read()
        except FileNotFoundError:
            return
        atomic_write_bytes(path, tail[tail.find(b"\n") + 1 :], durable=False)


def default_cache_dir(project: Path) -> Path:
    """``$BUILDYARD_HOME/cas``, where ``BUILDYARD_HOME`` defaults to ``<project>/.buildyard``."""
    home = os.environ.get("BUILDYARD_HOME")
    return (Path(home) if home else project / ".buildyard") / "cas"
