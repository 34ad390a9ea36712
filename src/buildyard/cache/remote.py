"""Remote job cache: a buildyard cache server behind the local store.

Owns :class:`RemoteCache` (the HTTP client of ``/_buildyard/v1/...`` on ``buildyard cache serve``)
and :class:`TieredActionCache`, the job cache the engine uses: lookups read the local store first
and the remote only after a local miss (a remote hit is imported into the local store, every blob
verified against its digest); stores write locally, then back to the remote. A remote that is down,
slow (short timeouts), or refuses the token is switched off for the rest of the process after one
warning: the run goes on with the local cache only and never fails because of the remote.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from buildyard.cache.action_cache import ActionCache, ActionEntry, RestoreResult
from buildyard.cache.cas import CAS
from buildyard.cache.keys import KeyManifest, MissDetail
from buildyard.cache.store import OutputLock
from buildyard.settings import load as load_settings

if TYPE_CHECKING:
    import ssl

    import httpx

logger = logging.getLogger(__name__)

#: Environment variable holding the bearer token of ``--remote-cache`` (the ``remote_cache_token`` setting).
TOKEN_ENV = "BUILDYARD_REMOTE_CACHE_TOKEN"  # noqa: S105 - the variable name, not a secret
_API = "/_buildyard/v1"
_CHUNK = 1024 * 1024
#: A remote action-cache entry larger than this is ignored (an entry is a list of paths and digests).
MAX_ENTRY_BYTES = 16 * 1024 * 1024


class RemoteCache:
    """Client of a buildyard cache server; every failure degrades to "not found" after one warning."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 2.0,
        warn: Callable[[str], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        import httpx  # noqa: PLC0415 - lazy: httpx costs ~200 ms of import time, only remote users pay it

        self.url = url.rstrip("/")
        token = token if token is not None else load_settings().remote_cache_token
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(
            base_url=self.url + _API,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 1.0)),
            # a server of a private CA (a Dask cluster's, with a client certificate) or the system's
            verify=ssl_context if ssl_context is not None else True,
        )
        self._warn = warn or logger.warning
        self.disabled = False
        self.read_only = False

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> RemoteCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _fail(self, what: str) -> None:
        if not self.disabled:
            self.disabled = True
            self._warn(f"remote cache {self.url} unavailable ({what}); continuing with the local cache only")

    def _request(self, method: str, path: str, **kwargs: object) -> httpx.Response | None:
        if self.disabled:
            return None
        import httpx  # noqa: PLC0415 - see __init__ (already imported: a dict lookup)

        try:
            response = self._client.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            self._fail("timed out" if isinstance(exc, httpx.TimeoutException) else type(exc).__name__)
            return None
        return None if self._failed(response.status_code) else response

    def _failed(self, status: int) -> bool:
        """True (and the remote cache disabled for the run) for a refused token or a server error."""
        if status == 401:
            self._fail(f"token refused: HTTP 401; set {TOKEN_ENV}")
            return True
        if status >= 500:
            self._fail(f"HTTP {status}")
            return True
        return False

    def get_entry(self, key: str) -> ActionEntry | None:
        """The remote action-cache entry for ``key``, if any.

        Untrusted: read streamed and dropped past ``MAX_ENTRY_BYTES``, it must name ``key``, and its
        paths are checked against the job's declared outputs when it is restored.
        """
        body = self._get_bounded(f"/ac/{key}", MAX_ENTRY_BYTES)
        if body is None:
            return None
        try:
            entry = ActionEntry.from_json(json.loads(body))
        except (ValueError, KeyError, TypeError):
            return None
        if entry.key != key:
            self._warn(f"remote cache {self.url} answered {key[:12]} with another key's entry; ignored")
            return None
        return entry

    def _get_bounded(self, path: str, limit: int) -> bytes | None:
        """The body of a 200 answer to ``GET path`` if at most ``limit`` bytes, else None."""
        if self.disabled:
            return None
        import httpx  # noqa: PLC0415 - see __init__

        try:
            with self._client.stream("GET", path) as response:
                if self._failed(response.status_code) or response.status_code != 200:
                    return None
                body = bytearray()
                for chunk in response.iter_bytes(_CHUNK):
                    body += chunk
                    if len(body) > limit:
                        self._warn(f"remote cache {self.url}: {path} is larger than {limit} bytes; ignored")
                        return None
        except httpx.HTTPError as exc:
            self._fail("timed out" if isinstance(exc, httpx.TimeoutException) else type(exc).__name__)
            return None
        return bytes(body)

    def fetch_blob(self, digest: str, cas: CAS) -> bool:
        """Stream the blob ``digest`` into ``cas``, verified (a bad body is discarded); True if stored."""
        if self.disabled:
            return False
        import httpx  # noqa: PLC0415 - see __init__

        try:
            with self._client.stream("GET", f"/blobs/{digest}") as response:
                if response.status_code != 200:
                    return False
                with cas.writer() as writer:
                    for chunk in response.iter_bytes(_CHUNK):
                        writer.write(chunk)
                    if writer.hexdigest() != digest:
                        return False
                    writer.commit()
        except httpx.TimeoutException:
            self._fail("timed out")
            return False
        except httpx.HTTPError as exc:
            self._fail(type(exc).__name__)
            return False
        return True

    def has_blob(self, digest: str) -> bool:
        """True if the server already holds ``digest``."""
        response = self._request("HEAD", f"/blobs/{digest}")
        return response is not None and response.status_code == 200

    def put_blob(self, digest: str, cas: CAS) -> bool:
        """Upload the local blob ``digest`` (streamed from a verified reader); True on success."""
        reader = cas.open(digest)
        if reader is None:
            return False
        with reader:
            return self._write("PUT", f"/blobs/{digest}", content=iter(lambda: reader.read(_CHUNK), b""))

    def put_entry(self, entry: ActionEntry) -> bool:
        """Upload an entry whose blobs the server already has; True on success."""
        return self._write("PUT", f"/ac/{entry.key}", json=entry.to_json())

    def _write(self, method: str, path: str, **kwargs: object) -> bool:
        if self.read_only:
            return False
        response = self._request(method, path, **kwargs)
        if response is None:
            return False
        if response.status_code == 403:
            self.read_only = True  # a read-only token: keep reading, stop trying to write
            self._warn(f"remote cache {self.url} is read-only for this token; results are not uploaded")
            return False
        return 200 <= response.status_code < 300


class TieredActionCache:
    """The engine's job cache: local :class:`ActionCache`, optionally backed by a :class:`RemoteCache`."""

    def __init__(self, local: ActionCache, remote: RemoteCache | None = None) -> None:
        self.local = local
        self.remote = remote

    def close(self) -> None:
        """Write the local store's buffered events; release the remote's connections."""
        self.local.store.flush_events()
        if self.remote is not None:
            self.remote.close()

    def __enter__(self) -> TieredActionCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def lookup(self, key: str) -> ActionEntry | None:
        """Local entry, else the remote one imported into the local store; None on a miss."""
        entry = self.local.lookup(key)
        if entry is not None or self.remote is None:
            return entry
        remote_entry = self.remote.get_entry(key)
        if remote_entry is None:
            return None
        cas = self.local.cas
        with self.local.store.in_use():  # prune must not delete fetched blobs before the entry names them
            for digest in remote_entry.blobs:
                if not cas.has(digest) and not self.remote.fetch_blob(digest, cas):
                    return None
            self.local.put_entry(remote_entry, enforce_limit=False)
        self.local.store.enforce_limit()
        return self.local.lookup(key)

    def restore(self, entry: ActionEntry, workspace: Path, *, outputs: Sequence[str]) -> RestoreResult | None:
        """See :meth:`ActionCache.restore` (a remote entry was imported locally by :meth:`lookup`)."""
        return self.local.restore(entry, workspace, outputs=outputs)

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
        """Store locally (see :meth:`ActionCache.store_outputs`), then write back to the remote."""
        entry = self.local.store_outputs(
            key,
            workspace=workspace,
            outputs=outputs,
            log=log,
            exit_code=exit_code,
            duration_s=duration_s,
            job=job,
            key_manifest=key_manifest,
            finished_at=finished_at,
        )
        self.push(entry)
        return entry

    def push(self, entry: ActionEntry) -> bool:
        """Upload ``entry`` and the blobs the remote lacks; True if the remote now has it."""
        remote = self.remote
        if remote is None or remote.disabled or remote.read_only:
            return False
        for digest in entry.blobs:
            if remote.has_blob(digest):
                continue
            if not remote.put_blob(digest, self.local.cas):
                return False
        return remote.put_entry(entry)

    def output_lock(self, project: Path, patterns: Sequence[str], *, job: str = "") -> OutputLock:
        """See :meth:`ActionCache.output_lock`."""
        return self.local.output_lock(project, patterns, job=job)

    def explain(self, job: str, current: KeyManifest) -> list[MissDetail]:
        """See :meth:`ActionCache.explain` (local history of the job)."""
        return self.local.explain(job, current)

    def record_miss(self, key: str) -> None:
        """See :meth:`ActionCache.record_miss`."""
        self.local.record_miss(key)
