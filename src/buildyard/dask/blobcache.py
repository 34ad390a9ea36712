"""An agent's local blob cache: its CAS kept under a size limit, least recently used blobs evicted first.

Blobs a job uses are touched (their mtime is the last use); after each job the cache is trimmed to
its limit, oldest first, never evicting a blob a running job of this agent has pinned (being
materialized into a workspace, or uploaded as an output). The size is counted once by a scan and
then kept up to date from what each job added, so a job pays for a scan only when it crossed the
limit. One :class:`BlobCache` per directory and process (the agent's job threads share it).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from buildyard.cache.cas import CAS

#: The default limit of an agent's blob cache (``buildyard agent --cache-size``).
DEFAULT_CACHE_SIZE = 10 * 1024**3


class BlobCache:
    """The size accounting and eviction of one agent's CAS directory (see the module docstring)."""

    def __init__(self, root: Path, limit: int | None = DEFAULT_CACHE_SIZE) -> None:
        self.root = root
        self.limit = limit
        self._lock = threading.Lock()
        self._pins: Counter[str] = Counter()
        self._size: int | None = None  # unknown until the first scan

    def cas(self) -> CAS:
        """A CAS on the directory (one per job: its ``added`` counts that job's new blobs)."""
        return CAS(self.root)

    @contextmanager
    def pinned(self, digests: Iterable[str]) -> Iterator[set[str]]:
        """Keep ``digests`` (and those added to the yielded set) from eviction for the block."""
        held = set(digests)
        with self._lock:
            self._pins.update(held)
        try:
            yield held
        finally:
            with self._lock:
                self._pins.subtract(held)
                self._pins += Counter()  # drop the zero counts

    def pin(self, held: set[str], digest: str) -> None:
        """Add ``digest`` to the pinned set ``held`` (of :meth:`pinned`)."""
        if digest not in held:
            with self._lock:
                self._pins[digest] += 1
            held.add(digest)

    def added(self, stored_bytes: int) -> None:
        """Count blobs a job stored (``CAS.take_added``)."""
        with self._lock:
            if self._size is not None:
                self._size += stored_bytes

    def size(self) -> int:
        """Stored bytes of the cache (scanned on first use)."""
        with self._lock:
            if self._size is None:
                self._size = sum(size for _d, size, _m in CAS(self.root).iter_blobs())
            return self._size

    def trim(self) -> int:
        """Evict least recently used unpinned blobs until the cache fits its limit; bytes evicted."""
        if self.limit is None or self.size() <= self.limit:
            return 0
        cas = CAS(self.root)
        with self._lock:
            blobs = sorted(cas.iter_blobs(), key=lambda blob: blob[2])
            total = sum(size for _d, size, _m in blobs)
            freed = 0
            for digest, size, _mtime in blobs:
                if total - freed <= self.limit:
                    break
                if self._pins[digest] > 0:
                    continue
                cas.evict(digest)
                freed += size
            self._size = total - freed
            return freed


_caches: dict[Path, BlobCache] = {}
_caches_lock = threading.Lock()


def blob_cache(root: Path, limit: int | None) -> BlobCache:
    """This process's cache of ``root`` (its limit updated to ``limit``)."""
    with _caches_lock:
        cache = _caches.get(root)
        if cache is None:
            cache = _caches[root] = BlobCache(root, limit)
        cache.limit = limit
        return cache
