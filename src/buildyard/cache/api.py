"""The cache service's interface to the engine: the :class:`JobCache` protocol and its factory.

The engine calls, per job instance (see the module docs of :mod:`buildyard.cache` for the flow)::

    cache = open_job_cache(project_dir, cache_dir=..., remote_url=..., remote_token=...)
    manifest = compute_key_manifest(spec, hasher=hasher, salt=cache.local.store.salt())
    key = manifest.key()
    entry = cache.lookup(key)
    # outputs: the job's declared output patterns (project-relative): the entry may write nothing else
    if entry and (restored := cache.restore(entry, workspace, outputs=[...])):   # cached, .log, saved_s
        ...
    else:
        reasons = cache.explain(job_id, manifest); cache.record_miss(key)
        ... run the job ...
        cache.store_outputs(key, workspace=..., outputs=[...], log=log_path, exit_code=0,
                            duration_s=..., job=job_id, key_manifest=manifest, finished_at=...)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from buildyard.cache.action_cache import ActionCache, ActionEntry, RestoreResult
from buildyard.cache.keys import KeyManifest, MissDetail
from buildyard.cache.remote import RemoteCache, TieredActionCache
from buildyard.cache.store import CacheStore, OutputLock, configured_max_size, default_cache_dir


class JobCache(Protocol):
    """What the scheduler needs from a job cache (implemented by ActionCache and TieredActionCache)."""

    def lookup(self, key: str) -> ActionEntry | None:
        """The entry for ``key`` or None (a miss)."""
        ...

    def restore(self, entry: ActionEntry, workspace: Path, *, outputs: Sequence[str]) -> RestoreResult | None:
        """Put the entry's outputs into ``workspace``, only where ``outputs`` (the job's declared
        patterns) allow; None if the entry turned out corrupt (a miss); ``UnsafePathError`` (entry
        evicted, nothing written) if it names anything else."""
        ...

    def store_outputs(
        self,
        key: str,
        *,
        workspace: Path,
        outputs: Sequence[str] = (),
        log: bytes | Path | None = None,
        exit_code: int = 0,
        duration_s: float = 0.0,
        job: str = "",
        key_manifest: KeyManifest | None = None,
        finished_at: float | None = None,
    ) -> ActionEntry:
        """Record what a job produced under ``key`` (``OutputChangedError`` if an output changed)."""
        ...

    def explain(self, job: str, current: KeyManifest) -> list[MissDetail]:
        """Why ``job`` misses: [] for a hit, else reasons naming what changed."""
        ...

    def record_miss(self, key: str) -> None:
        """Count a miss for ``cache stats``."""
        ...

    def output_lock(self, project: Path, patterns: Sequence[str], *, job: str = "") -> OutputLock:
        """The cross-process lock a job holds on its declared outputs while it restores or runs and stores."""
        ...


def open_job_cache(
    project: Path,
    *,
    cache_dir: Path | None = None,
    remote_url: str | None = None,
    remote_token: str | None = None,
    remote_timeout_s: float = 2.0,
    warn: Callable[[str], None] | None = None,
) -> TieredActionCache:
    """The job cache of a project: local store (``cache_dir`` or ``<home>/cas``), plus a
    remote when ``remote_url`` is given (token defaults to the ``remote_cache_token`` setting).

    The local store is private (0700/0600) and kept under :func:`configured_max_size`."""
    store = CacheStore(
        cache_dir if cache_dir is not None else default_cache_dir(project),
        private=True,
        max_size=configured_max_size(project),
    )
    store.buffer_events = True  # one append per run; written by ``close()``
    remote = (
        RemoteCache(remote_url, remote_token, timeout=remote_timeout_s, warn=warn) if remote_url else None
    )
    return TieredActionCache(ActionCache(store), remote)


def entry_log(project: Path, key: str, cache_dir: Path | None = None) -> bytes | None:
    """The log stored with job-cache entry ``key`` (None when the entry or its blob is gone).

    A cache hit does not copy its log into the run: ``buildyard logs`` reads it here.
    """
    store = CacheStore(cache_dir if cache_dir is not None else default_cache_dir(project), private=True)
    entry = ActionCache(store).lookup(key)
    if entry is None:
        return None
    return store.cas.get_bytes(entry.log_digest) if entry.log_digest else b""
