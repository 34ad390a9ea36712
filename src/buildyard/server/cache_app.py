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
unknown token: 401. A read-only token on a write: 403.

Untrusted clients are bounded (see :class:`ServerLimits`): a request's headers must arrive within a
deadline (slow or idle connections are closed), bodies are streamed into the CAS under a size cap with
an idle timeout, JSON bodies are size-capped and decoded into typed structs (every failure is a 4xx with
a JSON ``detail``), and blobs are streamed out from worker threads, verified as they are sent: a corrupt
blob aborts the transfer (the client never receives all of it) and is evicted. At most
``max_transfers`` large responses run at once; others wait up to ``transfer_wait_s``, then get 503 with
``Retry-After``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import re
import socket
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
import h11
import msgspec
import uvicorn
from blake3 import blake3
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from buildyard.cache.action_cache import ActionCache, ActionEntry
from buildyard.cache.cas import CAS, CorruptBlobError, is_digest
from buildyard.cache.kv import KeyValueStore
from buildyard.cache.store import CacheStore
from buildyard.errors import UsageError

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_BAZEL_RE = re.compile(r"^(?:(?P<instance>.+)/)?(?P<kind>ac|cas)/(?P<hash>[0-9a-f]{64})$")
_TURBO_HASH_RE = re.compile(r"^[A-Za-z0-9._-]{1,256}$")
_TEAM_PLAIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DURATION_RE = re.compile(r"^[0-9]{1,15}$")
_TAG_RE = re.compile(r"^[\x21-\x7e]{1,1024}$")
_CHUNK = 1024 * 1024
#: Uploads larger than this are refused with 413.
MAX_UPLOAD_BYTES = 8 * 1024 * 1024 * 1024
_log = logging.getLogger("uvicorn.error")  # printed by uvicorn's handler, one line each
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Bounds on what one client can hold of the server."""

    #: Close a connection whose request line and headers have not all arrived within this.
    header_timeout_s: float = 10.0
    #: Abort a request body that sends nothing, or a response the client does not read, for this long.
    idle_timeout_s: float = 60.0
    #: Large (over 1 MiB) responses streamed at once; others wait, then get 503.
    max_transfers: int = 4
    transfer_wait_s: float = 10.0
    #: Open connections; requests beyond it get 503 (uvicorn's limit_concurrency).
    max_connections: int = 256
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_json_bytes: int = 1024 * 1024
    keep_alive_s: int = 5


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


def _turbo_namespace(team: str | None) -> str:
    """Injective mapping of a Turborepo team/slug to a namespace.

    Plain names (a letter or digit, then up to 63 of ``[A-Za-z0-9._-]``) map to themselves, so entries
    written before keep their place; anything else maps to ``_t-<hash of the name>``, a form no plain
    name has. No team is ``_``, also not a plain name.
    """
    if not team:
        return "turbo/_"
    if _TEAM_PLAIN_RE.match(team):
        return f"turbo/{team}"
    return f"turbo/_t-{blake3(team.encode()).hexdigest()[:40]}"


def _turbo_meta(meta: Mapping[str, str]) -> tuple[int, str | None]:
    """Stored duration (ms) and tag, tolerant: values that are not valid read as absent."""
    duration = meta.get("x-artifact-duration", "")
    tag = meta.get("x-artifact-tag", "")
    return (
        int(duration) if _DURATION_RE.match(duration) else 0,
        tag if _TAG_RE.match(tag) else None,
    )


def _turbo_headers(meta: Mapping[str, str]) -> dict[str, str]:
    """Response headers for stored metadata; invalid values are left out."""
    duration, tag = _turbo_meta(meta)
    headers: dict[str, str] = {}
    if _DURATION_RE.match(meta.get("x-artifact-duration", "")):
        headers["x-artifact-duration"] = str(duration)
    if tag is not None:
        headers["x-artifact-tag"] = tag
    return headers


TurboHash = Annotated[str, msgspec.Meta(max_length=256)]


class _Query(msgspec.Struct):
    hashes: Annotated[list[TurboHash], msgspec.Meta(max_length=10_000)]


class _Event(msgspec.Struct):
    source: Annotated[str, msgspec.Meta(max_length=64)] = ""
    event: Annotated[str, msgspec.Meta(max_length=64)] = ""
    hash: TurboHash = ""
    duration: Annotated[float, msgspec.Meta(ge=0, le=1e12)] = 0.0


_Events = Annotated[list[_Event], msgspec.Meta(max_length=10_000)]


def _decode(body: bytes, kind: Any) -> Any:
    """Decode JSON into ``kind``; any failure (syntax, type, nesting depth) is a 400 naming it."""
    try:
        return msgspec.json.decode(body, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise HTTPException(400, f"invalid JSON body: {str(exc)[:200]}") from exc
    except RecursionError as exc:
        raise HTTPException(400, "invalid JSON body: nested too deeply") from exc


def _declared_length(request: Request, limit: int) -> int | None:
    length = request.headers.get("content-length")
    if length is None:
        return None
    if not length.isdigit():
        raise HTTPException(400, "invalid Content-Length")
    if int(length) > limit:
        raise HTTPException(413, f"body too large (limit {limit} bytes)")
    return int(length)


async def _body_chunks(request: Request, limit: int, idle_timeout_s: float) -> AsyncIterator[bytes]:
    """The request body, refused with 413 past ``limit`` bytes and 408 after ``idle_timeout_s`` of silence."""
    _declared_length(request, limit)
    stream = request.stream().__aiter__()
    total = 0
    while True:
        try:
            with anyio.fail_after(idle_timeout_s):
                chunk = await stream.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            raise HTTPException(408, f"request body stalled for {idle_timeout_s:g}s") from exc
        total += len(chunk)
        if total > limit:
            raise HTTPException(413, f"body too large (limit {limit} bytes)")
        if chunk:
            yield chunk


async def _read_body(request: Request, limits: ServerLimits) -> bytes:
    buf = bytearray()
    async for chunk in _body_chunks(request, limits.max_json_bytes, limits.idle_timeout_s):
        buf += chunk
    return bytes(buf)


async def _in_thread(func: Any, *args: Any) -> Any:
    return await anyio.to_thread.run_sync(func, *args)


class _Upload:
    """Streams a request body into a CAS blob (hashing and compression in a worker thread)."""

    def __init__(self, store: CacheStore, limits: ServerLimits) -> None:
        self.store = store
        self.limits = limits
        self.digest = ""
        self.size = 0

    async def receive(
        self, request: Request, *, expect_sha256: str | None = None, expect_blake3: str | None = None
    ) -> None:
        """Store the body; with an expected digest a mismatching body is discarded and answered 400."""
        sha256 = hashlib.sha256()
        writer = await _in_thread(self.store.cas.writer)
        try:
            buf = bytearray()
            async for chunk in _body_chunks(
                request, self.limits.max_upload_bytes, self.limits.idle_timeout_s
            ):
                buf += chunk
                if len(buf) >= _CHUNK:
                    data, buf = bytes(buf), bytearray()
                    await _in_thread(_feed, writer, sha256, data)
            await _in_thread(_feed, writer, sha256, bytes(buf))
            if expect_sha256 is not None and sha256.hexdigest() != expect_sha256:
                raise HTTPException(400, "content does not match its SHA-256 digest")
            if expect_blake3 is not None and writer.hexdigest() != expect_blake3:
                raise HTTPException(400, "content does not match its BLAKE3 digest")
            self.size = writer.size
            self.digest = await _in_thread(writer.commit)
        finally:
            if not self.digest:
                writer.abort()


def _feed(writer: Any, sha256: Any, data: bytes) -> None:
    sha256.update(data)
    writer.write(data)


def _peek(chunks: Iterator[bytes]) -> tuple[list[bytes], bool]:
    """Up to two chunks of a verified stream, and whether that was all (then it is verified)."""
    first = next(chunks, None)
    if first is None:
        return [], True
    second = next(chunks, None)
    if second is None:
        return [first], True
    return [first, second], False


class _BlobStream(StreamingResponse):
    """Sends a verified chunk stream; aborts the connection on corruption, stall or disconnect."""

    def __init__(
        self,
        chunks: Iterator[bytes],
        prefix: list[bytes],
        headers: dict[str, str],
        release: Any,
        idle_timeout_s: float,
    ) -> None:
        super().__init__(iter(()), headers=headers, media_type="application/octet-stream")
        self._chunks = chunks
        self._prefix = prefix
        self._release = release
        self._idle_timeout_s = idle_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tg:

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(watch_disconnect)
                await self._pump(send)
                tg.cancel_scope.cancel()
        finally:
            self._chunks.close()  # type: ignore[attr-defined]
            self._release()

    async def _pump(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        pending = list(self._prefix)
        while True:
            if pending:
                chunk: bytes | None = pending.pop(0)
            else:
                try:
                    chunk = await anyio.to_thread.run_sync(next, self._chunks, None)
                except CorruptBlobError as exc:
                    _log.warning("%s; transfer aborted", exc)
                    return  # uvicorn closes the connection: the response is incomplete
            if chunk is None:
                break
            try:
                with anyio.fail_after(self._idle_timeout_s):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except TimeoutError:
                _log.warning("client read nothing for %gs; transfer aborted", self._idle_timeout_s)
                return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _BlobSender:
    """Answers GETs of blobs: small ones whole (verified first), large ones streamed under a bound."""

    def __init__(self, cas: CAS, limits: ServerLimits) -> None:
        self.cas = cas
        self.limits = limits
        self.slots = asyncio.Semaphore(limits.max_transfers)
        self.waiting = 0

    async def response(self, digest: str, headers: dict[str, str], size: int | None) -> Response | None:
        """The response for ``digest``, None if the blob is absent or corrupt (then evicted)."""
        chunks: Iterator[bytes] | None = await _in_thread(self.cas.iter_verified, digest)
        if chunks is None:
            return None
        try:
            prefix, done = await _in_thread(_peek, chunks)
        except CorruptBlobError as exc:
            _log.warning("%s", exc)
            return None
        if done:
            body = b"".join(prefix)
            return Response(content=body, headers=headers, media_type="application/octet-stream")
        try:
            await self._acquire()
        except BaseException:
            chunks.close()  # type: ignore[attr-defined]
            raise
        if size is not None:
            headers = {**headers, "content-length": str(size)}
        return _BlobStream(chunks, prefix, headers, self.slots.release, self.limits.idle_timeout_s)

    async def _acquire(self) -> None:
        busy = HTTPException(
            503,
            f"{self.limits.max_transfers} large transfers in progress; retry later",
            headers={"Retry-After": str(max(1, int(self.limits.transfer_wait_s)))},
        )
        if self.waiting >= 4 * self.limits.max_transfers:
            raise busy
        self.waiting += 1
        try:
            with anyio.move_on_after(self.limits.transfer_wait_s):
                await self.slots.acquire()
                return
        finally:
            self.waiting -= 1
        raise busy


def create_cache_app(store: CacheStore, tokens: Tokens, limits: ServerLimits | None = None) -> FastAPI:
    """The FastAPI application serving ``store`` to holders of ``tokens``."""
    if not tokens:
        raise UsageError(
            "the cache server needs at least one token "
            "(--tokens-file, BUILDYARD_CACHE_TOKENS or BUILDYARD_CACHE_READ_TOKENS)"
        )
    limits = limits or ServerLimits()
    app = FastAPI(title="buildyard cache", docs_url=None, redoc_url=None, openapi_url=None)
    action_cache = ActionCache(store)
    sender = _BlobSender(store.cas, limits)

    def turbo_kv(request: Request) -> KeyValueStore:
        team = request.query_params.get("teamId") or request.query_params.get("slug")
        return KeyValueStore(store, _turbo_namespace(team))

    async def serve_value(kv: KeyValueStore, key: str, *, head: bool, turbo: bool = False) -> Response:
        entry = await _in_thread(kv.get, key)
        if entry is None:
            raise HTTPException(404, "not found")
        headers = _turbo_headers(entry.meta) if turbo else {}
        if head:
            headers["content-length"] = str(entry.size)
            return Response(status_code=200, headers=headers, media_type="application/octet-stream")
        response = await sender.response(entry.digest, headers, entry.size)
        if response is None:
            await _in_thread(kv.delete, key)
            raise HTTPException(404, "not found")
        return response

    # -- Turborepo -------------------------------------------------------------------------------
    @app.get("/v8/artifacts/status")
    def turbo_status(request: Request) -> dict[str, str]:
        _authorize(request, tokens, Access.READ)
        return {"status": "enabled"}

    @app.post("/v8/artifacts/events")
    async def turbo_events(request: Request) -> dict[str, Any]:
        _authorize(request, tokens, Access.READ)
        events: list[_Event] = _decode(await _read_body(request, limits) or b"[]", _Events)
        for event in events:
            if event.source == "REMOTE" and event.event in ("HIT", "MISS"):
                saved = event.duration / 1000 if event.event == "HIT" else 0.0
                await _in_thread(
                    lambda e=event, s=saved: store.record_event(e.event.lower(), key=e.hash, saved_s=s)
                )
        return {}

    @app.post("/v8/artifacts")
    async def turbo_query(request: Request) -> dict[str, Any]:
        _authorize(request, tokens, Access.READ)
        query: _Query = _decode(await _read_body(request, limits), _Query)
        kv = turbo_kv(request)

        def lookup() -> dict[str, Any]:
            result: dict[str, Any] = {}
            for h in query.hashes:
                entry = kv.get(h)
                if entry is None:
                    result[h] = {"error": {"message": "Artifact not found"}}
                else:
                    duration, tag = _turbo_meta(entry.meta)
                    result[h] = {"size": entry.size, "taskDurationMs": duration, "tag": tag}
            return result

        return dict(await _in_thread(lookup))

    @app.api_route("/v8/artifacts/{artifact_hash}", methods=["GET", "HEAD"])
    async def turbo_get(artifact_hash: str, request: Request) -> Response:
        _authorize(request, tokens, Access.READ)
        if not _TURBO_HASH_RE.match(artifact_hash):
            raise HTTPException(400, "invalid artifact hash")
        return await serve_value(turbo_kv(request), artifact_hash, head=request.method == "HEAD", turbo=True)

    @app.put("/v8/artifacts/{artifact_hash}", status_code=202)
    async def turbo_put(artifact_hash: str, request: Request) -> dict[str, list[str]]:
        _authorize(request, tokens, Access.WRITE)
        if not _TURBO_HASH_RE.match(artifact_hash):
            raise HTTPException(400, "invalid artifact hash")
        meta: dict[str, str] = {}
        duration = request.headers.get("x-artifact-duration")
        if duration is not None:
            if not _DURATION_RE.match(duration):
                raise HTTPException(400, "x-artifact-duration must be a whole number of milliseconds")
            meta["x-artifact-duration"] = duration
        tag = request.headers.get("x-artifact-tag")
        if tag is not None:
            if not _TAG_RE.match(tag):
                raise HTTPException(400, "x-artifact-tag must be 1-1024 visible ASCII characters")
            meta["x-artifact-tag"] = tag
        upload = _Upload(store, limits)
        await upload.receive(request)
        await _in_thread(turbo_kv(request).put, artifact_hash, upload.digest, upload.size, meta)
        return {"urls": [str(request.url.replace(query=""))]}

    # -- buildyard's own client ------------------------------------------------------------------
    @app.api_route("/_buildyard/v1/blobs/{digest}", methods=["GET", "HEAD"])
    async def by_blob_get(digest: str, request: Request) -> Response:
        _authorize(request, tokens, Access.READ)
        if not is_digest(digest):
            raise HTTPException(400, "not a BLAKE3 digest")
        if request.method == "HEAD":
            if not await _in_thread(store.cas.has, digest):
                raise HTTPException(404, "no such blob")
            return Response(status_code=200)
        response = await sender.response(digest, {}, None)
        if response is None:
            raise HTTPException(404, "no such blob")
        return response

    @app.put("/_buildyard/v1/blobs/{digest}")
    async def by_blob_put(digest: str, request: Request) -> dict[str, str]:
        _authorize(request, tokens, Access.WRITE)
        if not is_digest(digest):
            raise HTTPException(400, "not a BLAKE3 digest")
        await _Upload(store, limits).receive(request, expect_blake3=digest)
        return {"digest": digest}

    @app.get("/_buildyard/v1/ac/{key}")
    async def by_ac_get(key: str, request: Request) -> dict[str, Any]:
        _authorize(request, tokens, Access.READ)
        if not _SHA256_RE.match(key):
            raise HTTPException(400, "invalid key")
        entry: ActionEntry | None = await _in_thread(action_cache.lookup, key)
        if entry is None:
            raise HTTPException(404, "no entry")
        return entry.to_json()

    @app.put("/_buildyard/v1/ac/{key}")
    async def by_ac_put(key: str, request: Request) -> dict[str, str]:
        _authorize(request, tokens, Access.WRITE)
        if not _SHA256_RE.match(key):
            raise HTTPException(400, "invalid key")
        raw = _decode(await _read_body(request, limits), dict[str, Any])
        try:
            entry = ActionEntry.from_json(raw)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise HTTPException(400, "malformed action-cache entry") from exc
        if entry.key != key:
            raise HTTPException(400, "entry key does not match the URL")
        missing = [d for d in entry.blobs if not store.cas.has(d)]
        if missing:
            raise HTTPException(400, f"upload blobs first; missing {missing[0]}")
        await _in_thread(action_cache.put_entry, entry)
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
            await _in_thread(kv.delete, key)
            return Response(status_code=200)
        if request.method == "PUT":
            upload = _Upload(store, limits)
            await upload.receive(request, expect_sha256=key if bazel and bazel["kind"] == "cas" else None)
            await _in_thread(kv.put, key, upload.digest, upload.size)
            return Response(status_code=200)
        try:
            return await serve_value(kv, key, head=request.method == "HEAD")
        except HTTPException as exc:
            if exc.status_code == 404:
                return Response(status_code=404)
            raise

    app.state.store = store
    return app


def _header_deadline_protocol(header_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol plus a deadline for receiving a request's line and headers.

    uvicorn only times out idle keep-alive connections, and resets that on every byte, so a client
    that connects and sends nothing, or trickles its headers, would hold a connection forever. The
    deadline starts when the connection opens or a new request's first byte arrives, and is lifted
    once the headers are complete (so long uploads and downloads are not cut).
    """

    class HeaderDeadlineProtocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._header_timer is None and self.conn.their_state is h11.IDLE:
                self._arm()
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout_s, self._expire)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expire(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadlineProtocol


def serve_store(
    store: CacheStore,
    tokens: Tokens,
    *,
    host: str = "127.0.0.1",
    port: int = 8585,
    limits: ServerLimits | None = None,
) -> None:
    """Run the cache server until interrupted (uvicorn, one process)."""
    limits = limits or ServerLimits()
    app = create_cache_app(store, tokens, limits)
    try:  # fail with one line, before uvicorn logs and exits on its own
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror} (choose another --port)") from exc
    sys.stderr.write(f"buildyard cache serving {store.root} on http://{host}:{port}\n")
    sys.stderr.flush()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        http=_header_deadline_protocol(limits.header_timeout_s),
        limit_concurrency=limits.max_connections,
        timeout_keep_alive=limits.keep_alive_s,
    )
