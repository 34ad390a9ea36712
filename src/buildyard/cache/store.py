"""The cache directory as a whole: CAS blobs + ref files, and its maintenance (stats, ls, verify, prune).

Layout of a cache directory (``BUILDYARD_HOME/cas`` or ``--cache-dir``)::

    blobs/<d[:2]>/<digest>              zstd blobs (see buildyard.cache.cas)
    refs/<namespace>/<h[:2]>/<h>.json   one ref file per entry, h = BLAKE3 of the entry's name
    tmp/                                temp files of writers in progress
    events.log                          hit/miss events (one JSON line each), for stats
    salt                                32 random bytes (0600), keys secrets and pass_env values in job keys
    gc.lock                             shared by every store/restore in flight, exclusive for prune's deletes
    locks/<h>                           one per (project, job, declared output pattern): see OutputLock

A private store (the job cache) keeps its root 0700 and writes its files 0600: entries name paths
and keys, and the salt must stay secret.

A ref file is JSON with at least ``"name"`` and ``"blobs"`` (the digests it keeps alive). Namespaces
owned by the cache (``ac``, ``deps``, ``kv/...``) are evicted least-recently-used by :meth:`CacheStore.prune`;
refs in any other namespace (e.g. the artifact repository's) are never evicted by it but keep their
blobs alive. The mtime of a ref file is its last access (touched on every hit).

Size: a job-cache store has a size limit (:func:`configured_max_size`, default 10 GiB) enforced after
every entry written (:meth:`CacheStore.enforce_limit`): least-recently-used entries are evicted down
to 90 % of it.

Garbage collection and concurrency (why prune never deletes a blob in use): every store and restore
of the job cache holds ``gc.lock`` shared (:meth:`CacheStore.in_use`) from its first blob to its ref
write, or for the whole restore. Prune holds it exclusively while it evicts refs and deletes blobs.
It re-reads every ref before deleting, and deletes a blob only if no ref names it now and either
(a) a ref named it when prune started (an evicted or replaced entry's blob: its age does not matter,
so prune reaches the size asked for) and nobody touched it since (a writer deduplicating onto a blob
touches it), or (b) no ref named it when prune started and it is older than ``grace_s`` (it may
belong to a writer that does not take the lock, e.g. a remote client uploading blobs before its
entry). A restore holding the lock keeps reading; one that starts after a blob is gone finds it
missing, evicts the entry and runs the job.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blake3 import blake3

from buildyard import settings
from buildyard.cache.cas import CAS, is_digest
from buildyard.errors import UsageError, UserError
from buildyard.fsutil import atomic_write_bytes

#: Top-level namespaces whose entries ``prune`` may evict.
EVICTABLE_NAMESPACES = ("ac", "deps", "kv")
#: Unreferenced blobs younger than this are kept (a concurrent writer may be about to reference them).
GC_GRACE_S = 600.0
_NS_RE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
_EVENTS_TAIL_BYTES = 256 * 1024
#: Default size limit of the job cache (the ``cache_max_size`` setting overrides; ``0``/``off`` disables).
DEFAULT_MAX_SIZE = settings.DEFAULT_CACHE_MAX_SIZE
#: Automatic eviction brings the store down to this fraction of its limit.
EVICT_TO = 0.9
#: How long a reader waits for another process to finish creating the salt file.
SALT_WAIT_S = 2.0


def configured_max_size(project: Path | None = None) -> int | None:
    """The job cache's size limit in bytes (None: no limit): the ``cache_max_size`` setting of ``project``
    (``BUILDYARD_CACHE_MAX_SIZE``: ``5GB``…), else 10 GiB."""
    return settings.load(project).cache_max_size


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
    skipped: bool = False  # the lock was busy and the caller did not want to wait: nothing was done
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

    def __init__(self, root: Path, *, private: bool = False) -> None:
        self.root = root / "refs"
        self.mode = 0o600 if private else 0o644

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
            self.path(namespace, name),
            json.dumps(payload, sort_keys=True).encode(),
            mode=self.mode,
            durable=False,
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
    """A cache directory: the shared :class:`CAS`, the :class:`RefStore`, events and the secret salt.

    ``private``: root 0700, files 0600 (the job cache). ``max_size``: the limit
    :meth:`enforce_limit` keeps the store under (None: no limit).
    """

    def __init__(
        self, root: Path, *, durable: bool = False, private: bool = False, max_size: int | None = None
    ) -> None:
        self.root = root
        self.private = private
        self.cas = CAS(root, durable=durable, file_mode=0o600 if private else 0o644)
        self.refs = RefStore(root, private=private)
        self.max_size = max_size
        self._size: int | None = None  # bytes on disk as of the last check (enforce_limit)
        self._salt: bytes | None = None
        #: When True, events are kept in memory until :meth:`flush_events` (one write per run).
        self.buffer_events = False
        self._pending_events: list[str] = []
        self._root_ready = False

    def ensure_root(self) -> None:
        """Create the root (0700 for a private store, tightening an existing one we own)."""
        if self._root_ready:
            return
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700 if self.private else 0o777)
        if self.private:
            with contextlib.suppress(OSError):
                st = self.root.stat()
                if st.st_uid == os.getuid() and st.st_mode & 0o077:
                    self.root.chmod(0o700)
        self._root_ready = True

    # -- locking ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def in_use(self) -> Iterator[None]:
        """Hold ``gc.lock`` shared: prune deletes no blob while this is held (see the module docs)."""
        with self._lock(fcntl.LOCK_SH, wait=True):
            yield

    @contextlib.contextmanager
    def _lock(self, kind: int, *, wait: bool) -> Iterator[bool]:
        self.ensure_root()
        fd = os.open(self.root / "gc.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, kind if wait else kind | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # releases the lock

    def salt(self) -> bytes:
        """The per-store 32-byte secret salt (the ``cache_salt`` setting overrides; created 0600 once).

        Created complete or not at all: written to a temp file, then ``link``ed to ``salt`` (which
        fails if another process won), so every process reads the same 32 bytes. A reader finding a
        shorter file (an older writer mid-write) waits for it up to ``SALT_WAIT_S``.
        """
        if self._salt is not None:
            return self._salt
        configured = settings.load().cache_salt  # BUILDYARD_CACHE_SALT, validated there
        if configured is not None:
            self._salt = configured
            return configured
        path = self.root / "salt"
        deadline = time.monotonic() + SALT_WAIT_S
        while True:
            try:
                value = path.read_bytes()
            except FileNotFoundError:
                self._create_salt(path)
                continue
            if len(value) == 32:
                break
            if time.monotonic() > deadline:
                raise UsageError(
                    f"{path} is not a 32-byte salt; remove it (jobs using secrets or pass_env will miss once)"
                )
            time.sleep(0.01)
        self._salt = value
        return value

    def _create_salt(self, path: Path) -> None:
        """Publish a new salt at ``path`` unless one exists (temp file + ``link``: never half-written)."""
        self.ensure_root()
        fd, tmp = tempfile.mkstemp(prefix=".salt.", suffix=".tmp", dir=self.root)  # 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

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
        self.ensure_root()
        mode = 0o600 if self.private else 0o644
        fd = os.open(self.root / "events.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, mode)
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
        wait: bool = True,
    ) -> PruneReport:
        """Evict cache entries least-recently-used first, then delete blobs nothing refers to.

        Entries last used more than ``older_than_s`` ago go first; then, while the directory holds
        more than ``max_size`` bytes, the oldest remaining entries. The blobs of evicted entries are
        deleted whatever their age; blobs no ref named when prune started only once older than
        ``grace_s``. Deleting holds ``gc.lock`` exclusively (see the module docs); with
        ``wait=False`` a busy lock makes prune do nothing (``skipped``).
        """
        started = time.time()
        now = started if now is None else now
        report = PruneReport()
        with self._lock(fcntl.LOCK_EX, wait=wait) as got:
            if not got:
                report.skipped = True
                return report
            refs = list(self.refs.iter_refs(unreadable=report.unreadable_refs))
            refcount: Counter[str] = Counter(d for ref in refs for d in set(ref.blobs))
            blobs = {digest: (size, mtime) for digest, size, mtime in self.cas.iter_blobs()}
            orphans = {d for d in blobs if refcount[d] == 0}
            young = now - grace_s
            evictable = sorted(
                (r for r in refs if r.namespace.split("/")[0] in EVICTABLE_NAMESPACES),
                key=lambda r: r.last_access,
            )
            total = sum(size for d, (size, mtime) in blobs.items() if d not in orphans or mtime >= young)

            def evict(ref: RefInfo) -> int:
                with contextlib.suppress(FileNotFoundError):
                    ref.path.unlink()
                report.refs_removed += 1
                freed = 0
                for d in set(ref.blobs):
                    refcount[d] -= 1
                    if refcount[d] == 0 and d in blobs:
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
            live = {d for ref in self.refs.iter_refs() for d in ref.blobs}  # refs written meanwhile too
            for digest, (size, mtime) in blobs.items():
                if report.unreadable_refs:
                    break  # an entry that cannot be read may need any blob: keep them all
                if digest in live or (digest in orphans and mtime >= young):
                    continue
                if digest not in orphans and self._touched_since(digest, started):
                    continue  # deduplicated onto by a writer that does not take the lock
                self.cas.evict(digest)
                report.blobs_removed += 1
                report.bytes_freed += size
        report.bytes_left = sum(size for _d, size, _m in self.cas.iter_blobs())
        self._size = report.bytes_left
        self.cas.clean_tmp()
        self.refs.clean_tmp()
        self._trim_events()
        return report

    def _touched_since(self, digest: str, when: float) -> bool:
        try:
            return self.cas.path_for(digest).stat().st_mtime > when
        except FileNotFoundError:
            return False

    def enforce_limit(self) -> PruneReport | None:
        """Evict LRU entries down to 90 % of ``max_size`` if the store outgrew it; None if nothing to do.

        The store's size is scanned once per instance, then kept up to date from the bytes this
        process added; a prune that would wait for another process's lock is left for a later call.
        """
        if self.max_size is None:
            return None
        added = self.cas.take_added()
        if self._size is None:
            self._size = sum(size for _d, size, _m in self.cas.iter_blobs())
        else:
            self._size += added
        if self._size <= self.max_size:
            return None
        report = self.prune(max_size=int(self.max_size * EVICT_TO), wait=False)
        return None if report.skipped else report

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
        mode = 0o600 if self.private else 0o644
        atomic_write_bytes(path, tail[tail.find(b"\n") + 1 :], mode=mode, durable=False)


class OutputLock:
    """Exclusive advisory locks on a job's declared output patterns in one project, across processes.

    Concurrent runs in one working tree take it around a cached job (lookup → restore, or run →
    store): the same job of two runs then never writes and captures its outputs at the same time
    (the second one usually finds the first one's entry and restores it). Keyed by job too, so
    matrix instances of one run declaring the same outputs keep running in parallel. All-or-nothing and
    non-blocking (:meth:`try_acquire`), so two jobs can never deadlock; the caller polls.
    """

    def __init__(self, store: CacheStore, project: Path, patterns: Sequence[str], *, job: str = "") -> None:
        self._dir = store.root / "locks"
        self._store = store
        root = os.path.realpath(project)
        self._names = sorted(
            {
                blake3(f"{root}\0{job}\0{p.rstrip('/')}".encode()).hexdigest()[:32]
                for p in patterns
                if not p.startswith("!")
            }
        )
        self._fds: list[int] = []

    def try_acquire(self) -> bool:
        """Take every lock, or none (False if another process holds one)."""
        if not self._names:
            return True
        self._store.ensure_root()
        self._dir.mkdir(exist_ok=True, mode=0o700)
        for name in self._names:
            fd = os.open(self._dir / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self.release()
                return False
            self._fds.append(fd)
        return True

    def release(self) -> None:
        """Drop every lock held."""
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []


def default_cache_dir(project: Path) -> Path:
    """``<home>/cas``: the ``home`` setting (``BUILDYARD_HOME``) defaults to ``<project>/.buildyard``."""
    return settings.load(project).home / "cas"
