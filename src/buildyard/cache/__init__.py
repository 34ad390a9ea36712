"""Content-addressed caching: job keys and explanations, the CAS, action and dependency caches, remote.

Public API (what the engine and other services import):

- keys (pure): :class:`KeyManifest`, :class:`CacheMissReason`, :class:`MissDetail`, :func:`explain`
- job keys from disk: :class:`JobKeySpec`, :func:`compute_key_manifest`, :class:`FileHasher`,
  :class:`StatCache`, :func:`open_stat_cache`
- job cache: :func:`open_job_cache` -> :class:`JobCache` (lookup, restore, store_outputs, explain)
- dependency caches: :class:`DependencyCache`, :class:`CachePolicy`, :func:`dependency_cache_key`
- storage shared with the artifact repository: :class:`CAS`, :class:`CacheStore`
"""

from __future__ import annotations

from buildyard.cache.action_cache import (
    ActionCache,
    ActionEntry,
    OutputChangedError,
    OutputFile,
    RestoreResult,
)
from buildyard.cache.api import JobCache, entry_log, open_job_cache
from buildyard.cache.cas import CAS
from buildyard.cache.dep_cache import CachePolicy, DependencyCache, DepRestore, dependency_cache_key
from buildyard.cache.hashing import (
    FileHasher,
    InputIndex,
    NotCachedError,
    StatCache,
    digest_inputs,
    list_inputs,
    open_stat_cache,
)
from buildyard.cache.job_key import JobKeySpec, compute_key_manifest
from buildyard.cache.keys import CacheMissReason, KeyManifest, MissDetail, explain
from buildyard.cache.pathsafe import UnsafePathError, unmatched_patterns
from buildyard.cache.remote import RemoteCache, TieredActionCache
from buildyard.cache.store import CacheStore, default_cache_dir

__all__ = [
    "CAS",
    "ActionCache",
    "ActionEntry",
    "CacheMissReason",
    "CachePolicy",
    "CacheStore",
    "DepRestore",
    "DependencyCache",
    "FileHasher",
    "InputIndex",
    "JobCache",
    "JobKeySpec",
    "KeyManifest",
    "MissDetail",
    "NotCachedError",
    "OutputChangedError",
    "OutputFile",
    "RemoteCache",
    "RestoreResult",
    "StatCache",
    "TieredActionCache",
    "UnsafePathError",
    "compute_key_manifest",
    "default_cache_dir",
    "dependency_cache_key",
    "digest_inputs",
    "entry_log",
    "explain",
    "list_inputs",
    "open_job_cache",
    "open_stat_cache",
    "unmatched_patterns",
]
