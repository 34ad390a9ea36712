"""HTTP face of the cache: one content-addressed store spoken to in several cache protocols.

Owns the routes and their mapping to :mod:`buildyard.cache` services (no storage logic here):

- Turborepo remote cache: ``GET /v8/artifacts/status``, ``GET|HEAD|PUT /v8/artifacts/{hash}``,
  ``POST /v8/artifacts`` (query), ``POST /v8/artifacts/events``; ``x-artifact-duration`` and
  ``x-artifact-tag`` are stored and returned; ``teamId``/``slug`` select a namespace per team.
- Bazel HTTP cache: ``/ac/{sha256}`` and ``/cas/{sha256}`` (optionally under an instance prefix);
  CAS uploads are verified against their SHA-256 (400 on mismatch).
- buildyard's own client (:mod:`buildyard.cache.remote`): ``/_buildyard/v1/blobs/{blake3}`` (uploads
  verified) and ``/_buildyard/v1/ac/{key}`` (the same action-cache entries as a local store).
- Everything else: plain ``GET|HEAD|PUT|DELETE /{key...}``, as ccache's HTTP storage (any layout)
  and Gradle's HTTP build cache use it.

Auth: ``Authorization: Bearer TOKEN`` (or HTTP Basic with the token as password, for Gradle). No or
unknown token: 401. A read-only token on a write: 403. Bodies are streamed into the CAS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import StreamingResponse

from buildyard.cache.action_cache import ActionCache, ActionEntry
from buildyard.cache.cas import is_digest
from buildyard.cache.kv import KeyValueStore, KVEntry
from buildyard.cache.store import CacheStore, safe_namespace_part
from buildyard.errors import UsageError

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_BAZEL_RE = re.compile(r"^(?:(?P<instance>.+)/)?(?P<kind>ac|cas)/(?P<hash>[0-9a-f]{64})$")
_TURBO_HASH_RE = re.compile(r"^[A-Za-z0-9._-]{1,256}$")
_INLINE_LIMIT = 16 * 1024 * 1024
_CHUNK = 1024 * 1024
#: Uploads larger than this are refused with 413.
MAX_UPLOAD_BYTES = 8 * 1024 * 1024 * 1024


class Access(StrEnum):
    """What a token may do."""

    READ = "read"
    WRITE = "write"


@dataclass(frozen=True, slots=True)
class Tokens:
    """Bearer tokens accepted by the server."""

    write: frozenset[str] = frozenset()
    read: frozenset[str] = frozenset()

    def access(self, token: str) -> Access | None:
        """The access a token grants (constant-time comparisons), None if unknown."""
        granted: Access | None = None
        for candidate in self.read:
            if hmac.compare_digest(candidate.encode(), token.encode()):
                granted = Access.READ
        for candidate in self.write:
            if hmac.compare_digest(candidate.encode(), token.encode()):
                granted = Access.WRITE
        return granted

    def __bool__(self) -> bool:
        return bool(self.write or self.read)


def load_tokens_file(path: Path) -> Tokens:
    """Read ``<read|write> <token>`` lines (``#`` comments, blank lines ignored)."""
    write: set[str] = set()
    read: set[str] = set()
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read tokens file ({exc.strerror})") from exc
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or parts[0] not in ("read", "write"):
            raise UsageError(f"{path}:{lineno}: expected '<read|write> <token>', got {line[:40]!r}")
        (write if parts[0] == "write" else read).add(parts[1])
    return Tokens(write=frozenset(write), read=frozenset(read))


def _token_from(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip()).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def _authorize(request: Request, tokens: Tokens, needed: Access) -> None:
    token = _token_from(request)
    granted = tokens.access(token) if token else None
    if granted is None:
        raise HTTPException(
            401, "missing or unknown token", headers={"WWW-Authenticate": 'Bearer realm="buildyard"'}
        )
    if needed is Access.WRITE and granted is not Access.WRITE:
        raise HTTPException(403, "this token may only read")


def _check_length(request: Request) -> None:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, "upload too large")


def _iter_reader(reader: BinaryIO) -> Iterator[bytes]:
    with reader:
        yield from iter(lambda: reader.read(_CHUNK), b"")


def _value_response(entry: KVEntry, reader: BinaryIO, headers: dict[str, str], *, head: bool) -> Response:
    headers = {**headers, "content-length": str(entry.size)}
    if head:
        reader.close()
        return Response(status_code=200, headers=headers, media_type="application/octet-stream")
    if entry.size <= _INLINE_LIMIT:
        with reader:
            body = reader.read()
        return Response(content=body, headers=headers, media_type="application/octet-stream")
    return StreamingResponse(_iter_reader(reader), headers=headers, media_type="application/octet-stream")


class _Upload:
    """Streams a request body into a CAS blob while computing its SHA-256."""

    def __init__(self, store: CacheStore) -> None:
        self.store = store
        self.sha256 = hashlib.sha256()
        self.digest = ""
        self.size = 0

    async def receive(
        self, request: Request, *, expect_sha256: str | None = None, expect_blake3: str | None = None
    ) -> None:
        """Store the body; with an expected digest a mismatching body is discarded and answered 400."""
        with self.store.cas.writer() as writer:
            stream: AsyncIterator[bytes] = request.stream()
            async for chunk in stream:
                if chunk:
                    self.sha256.update(chunk)
                    writer.write(chunk)
                    if writer.size > MAX_UPLOAD_BYTES:
                        raise HTTPException(413, "upload too large")
            if expect_sha256 is not None and self.sha256.hexdigest() != expect_sha256:
                raise HTTPException(400, "content does not match its SHA-256 digest")
            if expect_blake3 is not None and writer.hexdigest() != expect_blake3:
                raise HTTPException(400, "content does not match its BLAKE3 digest")
            self.size = writer.size
            self.digest = writer.commit()


def create_cache_app(store: CacheStore, tokens: Tokens) -> FastAPI:
    """The FastAPI application serving ``store`` to holders of ``tokens``."""
    if not tokens:
        raise UsageError("the cache server needs at least one token (--token, --read-token or --tokens-file)")
    app = FastAPI(title="buildyard cache", docs_url=None, redoc_url=None, openapi_url=None)
    action_cache = ActionCache(store)

    def turbo_kv(request: Request) -> KeyValueStore:
        team = request.query_params.get("teamId") or request.query_params.get("slug") or "_"
        return KeyValueStore(store, f"turbo/{safe_namespace_part(team)}")

    # -- Turborepo -------------------------------------------------------------------------------
    @app.get("/v8/artifacts/status")
    def turbo_status(request: Request) -> dict[str, str]:
        _authorize(request, tokens, Access.READ)
        return {"status": "enabled"}

    @app.post("/v8/artifacts/events")
    async def turbo_events(request: Request) -> dict[str, Any]:
        _authorize(request, tokens, Access.READ)
        try:
            events = json.loads(await request.body() or b"[]")
        except ValueError as exc:
            raise HTTPException(400, "events must be a JSON array") from exc
        if not isinstance(events, list):
            raise HTTPException(400, "events must be a JSON array")
        for event in events:
            if (
                isinstance(event, dict)
                and event.get("source") == "REMOTE"
                and event.get("event") in ("HIT", "MISS")
            ):
                saved = float(event.get("duration") or 0) / 1000 if event["event"] == "HIT" else 0.0
                store.record_event(str(event["event"]).lower(), key=str(event.get("hash", "")), saved_s=saved)
        return {}

    @app.post("/v8/artifacts")
    async def turbo_query(request: Request) -> dict[str, Any]:
        _authorize(request, tokens, Access.READ)
        try:
            body = json.loads(await request.body())
            hashes = body["hashes"]
        except (ValueError, KeyError, TypeError) as exc:
            raise HTTPException(400, "expected {'hashes': [...]}") from exc
        kv = turbo_kv(request)
        result: dict[str, Any] = {}
        for h in hashes if isinstance(hashes, list) else []:
            entry = kv.get(str(h))
            if entry is None:
                result[str(h)] = {"error": {"message": "Artifact not found"}}
            else:
                result[str(h)] = {
                    "size": entry.size,
                    "taskDurationMs": int(entry.meta.get("x-artifact-duration", "0") or 0),
                    "tag": entry.meta.get("x-artifact-tag"),
                }
        return result

    @app.api_route("/v8/artifacts/{artifact_hash}", methods=["GET", "HEAD"])
    def turbo_get(artifact_hash: str, request: Request) -> Response:
        _authorize(request, tokens, Access.READ)
        if not _TURBO_HASH_RE.match(artifact_hash):
            raise HTTPException(400, "invalid artifact hash")
        found = turbo_kv(request).open(artifact_hash)
        if found is None:
            raise HTTPException(404, "Artifact not found")
        entry, reader = found
        headers = {k: v for k, v in entry.meta.items() if k in ("x-artifact-duration", "x-artifact-tag")}
        return _value_response(entry, reader, headers, head=request.method == "HEAD")

    @app.put("/v8/artifacts/{artifact_hash}", status_code=202)
    async def turbo_put(artifact_hash: str, request: Request) -> dict[str, list[str]]:
        _authorize(request, tokens, Access.WRITE)
        _check_length(request)
        if not _TURBO_HASH_RE.match(artifact_hash):
            raise HTTPException(400, "invalid artifact hash")
        upload = _Upload(store)
        await upload.receive(request)
        meta = {
            k: request.headers[k] for k in ("x-artifact-duration", "x-artifact-tag") if k in request.headers
        }
        turbo_kv(request).put(artifact_hash, upload.digest, upload.size, meta)
        return {"urls": [str(request.url.replace(query=""))]}

    # -- buildyard's own client ------------------------------------------------------------------
    @app.api_route("/_buildyard/v1/blobs/{digest}", methods=["GET", "HEAD"])
    def by_blob_get(digest: str, request: Request) -> Response:
        _authorize(request, tokens, Access.READ)
        if not is_digest(digest):
            raise HTTPException(400, "not a BLAKE3 digest")
        if request.method == "HEAD":
            if not store.cas.has(digest):
                raise HTTPException(404, "no such blob")
            return Response(status_code=200)
        reader = store.cas.open(digest)
        if reader is None:
            raise HTTPException(404, "no such blob")
        size = reader.seek(0, 2)
        reader.seek(0)
        return _value_response(KVEntry(key=digest, digest=digest, size=size), reader, {}, head=False)

    @app.put("/_buildyard/v1/blobs/{digest}")
    async def by_blob_put(digest: str, request: Request) -> dict[str, str]:
        _authorize(request, tokens, Access.WRITE)
        _check_length(request)
        if not is_digest(digest):
            raise HTTPException(400, "not a BLAKE3 digest")
        await _Upload(store).receive(request, expect_blake3=digest)
        return {"digest": digest}

    @app.get("/_buildyard/v1/ac/{key}")
    def by_ac_get(key: str, request: Request) -> dict[str, Any]:
        _authorize(request, tokens, Access.READ)
        if not _SHA256_RE.match(key):
            raise HTTPException(400, "invalid key")
        entry = action_cache.lookup(key)
        if entry is None:
            raise HTTPException(404, "no entry")
        return entry.to_json()

    @app.put("/_buildyard/v1/ac/{key}")
    async def by_ac_put(key: str, request: Request) -> dict[str, str]:
        _authorize(request, tokens, Access.WRITE)
        if not _SHA256_RE.match(key):
            raise HTTPException(400, "invalid key")
        try:
            entry = ActionEntry.from_json(json.loads(await request.body()))
        except (ValueError, KeyError, TypeError) as exc:
            raise HTTPException(400, "malformed action-cache entry") from exc
        if entry.key != key:
            raise HTTPException(400, "entry key does not match the URL")
        missing = [d for d in entry.blobs if not store.cas.has(d)]
        if missing:
            raise HTTPException(400, f"upload blobs first; missing {missing[0]}")
        action_cache.put_entry(entry)
        return {"key": key}

    # -- Bazel HTTP cache and plain key/value (ccache, Gradle) -----------------------------------
    @app.api_route("/{path:path}", methods=["GET", "HEAD", "PUT", "DELETE"])
    async def plain(path: str, request: Request) -> Response:
        write = request.method in ("PUT", "DELETE")
        _authorize(request, tokens, Access.WRITE if write else Access.READ)
        if not path or len(path) > 1024 or "\0" in path:
            raise HTTPException(400, "invalid key")
        bazel = _BAZEL_RE.match(path)
        if bazel:
            kv = KeyValueStore(store, f"bazel/{bazel['kind']}")
            key = bazel["hash"]
        else:
            kv = KeyValueStore(store, "http")
            key = path
        if request.method == "DELETE":
            kv.delete(key)
            return Response(status_code=200)
        if request.method == "PUT":
            _check_length(request)
            upload = _Upload(store)
            await upload.receive(request, expect_sha256=key if bazel and bazel["kind"] == "cas" else None)
            kv.put(key, upload.digest, upload.size)
            return Response(status_code=200)
        found = kv.open(key)
        if found is None:
            return Response(status_code=404)
        entry, reader = found
        return _value_response(entry, reader, {}, head=request.method == "HEAD")

    app.state.store = store
    return app


def serve_store(store: CacheStore, tokens: Tokens, *, host: str = "127.0.0.1", port: int = 8585) -> None:
    """Run the cache server until interrupted (uvicorn, one process)."""
    app = create_cache_app(store, tokens)
    try:  # fail with one line, before uvicorn logs and exits on its own
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror} (choose another --port)") from exc
    sys.stderr.write(f"buildyard cache serving {store.root} on http://{host}:{port}\n")
    sys.stderr.flush()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
