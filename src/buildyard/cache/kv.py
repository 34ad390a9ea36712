"""Named blobs: ``(namespace, key) -> blob + small metadata``, over the same CAS.

Owns the storage behind the HTTP cache protocols (Turborepo artifacts, Bazel AC/CAS, plain
``GET|PUT /{key}`` for ccache and Gradle): the value is a CAS blob (deduplicated with every other
use of the store), the mapping a ref file in namespace ``kv/<namespace>``, written after the blob.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from buildyard.cache.store import CacheStore, safe_namespace_part

KV_ROOT = "kv"


@dataclass(frozen=True, slots=True)
class KVEntry:
    """A named blob and its metadata (e.g. Turborepo's duration and tag)."""

    key: str
    digest: str
    size: int
    meta: Mapping[str, str] = field(default_factory=dict)


class KeyValueStore:
    """One namespace of named blobs."""

    def __init__(self, store: CacheStore, namespace: str) -> None:
        self.store = store
        self.namespace = f"{KV_ROOT}/" + "/".join(safe_namespace_part(p) for p in namespace.split("/"))

    def get(self, key: str) -> KVEntry | None:
        """The entry for ``key`` if its blob is present (marks it used)."""
        data = self.store.refs.read(self.namespace, key)
        if data is None:
            return None
        digest = data.get("digest")
        if not isinstance(digest, str) or not self.store.cas.has(digest):
            self.store.refs.delete(self.namespace, key)
            return None
        size = data.get("size", 0)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            self.store.refs.delete(self.namespace, key)  # a damaged ref: forget it, never fail the query
            return None
        meta = data.get("meta")
        return KVEntry(
            key=key,
            digest=digest,
            size=size,
            meta={str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {},
        )

    def read(self, key: str) -> tuple[KVEntry, bytes] | None:
        """Entry and verified bytes; None if absent or corrupt (a corrupt blob drops the entry)."""
        entry = self.get(key)
        if entry is None:
            return None
        data = self.store.cas.get_bytes(entry.digest)
        if data is None:
            self.store.refs.delete(self.namespace, key)
            return None
        return entry, data

    def open(self, key: str) -> tuple[KVEntry, BinaryIO] | None:
        """Entry and a verified reader (see :meth:`CAS.open`)."""
        entry = self.get(key)
        if entry is None:
            return None
        reader = self.store.cas.open(entry.digest)
        if reader is None:
            self.store.refs.delete(self.namespace, key)
            return None
        return entry, reader

    def put(self, key: str, digest: str, size: int, meta: Mapping[str, str] | None = None) -> KVEntry:
        """Name the existing blob ``digest`` as ``key`` (replacing any previous value)."""
        payload: dict[str, Any] = {
            "digest": digest,
            "size": size,
            "meta": dict(meta or {}),
            "blobs": [digest],
        }
        self.store.refs.write(self.namespace, key, payload)
        return KVEntry(key=key, digest=digest, size=size, meta=dict(meta or {}))

    def put_bytes(self, key: str, data: bytes, meta: Mapping[str, str] | None = None) -> KVEntry:
        """Store ``data`` as the value of ``key``."""
        return self.put(key, self.store.cas.put_bytes(data), len(data), meta)

    def put_chunks(self, key: str, chunks: Iterable[bytes], meta: Mapping[str, str] | None = None) -> KVEntry:
        """Store streamed ``chunks`` as the value of ``key``."""
        with self.store.cas.writer() as w:
            for chunk in chunks:
                w.write(chunk)
            digest = w.commit()
        return self.put(key, digest, w.size, meta)

    def delete(self, key: str) -> bool:
        """Forget ``key`` (the blob goes at the next prune if nothing else uses it)."""
        return self.store.refs.delete(self.namespace, key)
