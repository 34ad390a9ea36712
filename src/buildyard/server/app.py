"""The server's FastAPI application: ``create_app(state)`` wires the middleware that says who a
request acts as, the API, the login page, ``/metrics`` and (once merged) the dashboard.

Who a request is (``request.state.user``: ``.name``/``.role`` or None, ``request.state.csrf_token``):
- ``Authorization: Bearer TOKEN``: the token's user; an unknown token is refused (401) at once;
- a session cookie from the login page: its user, with the session's CSRF token;
- otherwise anonymous, with a CSRF token from a ``by_csrf`` cookie (for the login form).
A server with no user and no token is *open*: it only binds loopback addresses (``serve`` refuses
others), only answers requests whose ``Host`` is a loopback name (no DNS rebinding), and treats every
request as the local admin ``local``. Form posts are checked for CSRF everywhere (``api.read_input``).
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Protocol

import anyio.to_thread
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from buildyard.server.auth import User

if TYPE_CHECKING:
    from buildyard.server.runners import RunnerPool
    from buildyard.server.state import ServerState

SESSION_COOKIE = "by_session"
CSRF_COOKIE = "by_csrf"
LOCAL_ADMIN = User("local", "admin")
#: Seconds the "is authentication configured" answer is reused (one query per request otherwise).
_OPEN_TTL = 2.0
#: Worker threads of the sync handlers (anyio's default is 40). The dashboard's handlers are CPU-bound
#: Python: 40 of them contend for the GIL with the event loop, which then gets it once in ~40 switch
#: intervals, so under 50 concurrent dashboard clients a /metrics scrape or an SSE log line waited
#: seconds. A few threads keep the same throughput and leave the loop responsive.
WORKER_THREADS = 8


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name) is this machine only."""
    name = host.strip("[]").lower()
    if name in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


class _OpenCheck:
    """Caches ``auth.configured()`` for a moment."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.value = False
        self.at = 0.0

    def known(self) -> bool | None:
        """The cached answer while it is fresh, else None (``configured`` asks the database)."""
        return self.value if time.monotonic() - self.at <= _OPEN_TTL else None

    def configured(self) -> bool:
        now = time.monotonic()
        if now - self.at > _OPEN_TTL:
            self.value = self.state.auth.configured()
            self.at = now
        return self.value


def _identify(state: ServerState, opened: _OpenCheck, request: Request) -> tuple[User | None, str, str]:
    """(user, csrf token, how): how is ``bearer``, ``session``, ``local`` or ``anonymous``."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        user = state.auth.token_user(header[7:].strip())
        return user, "", "bearer" if user is not None else "invalid"
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if cookie:
        session = state.auth.session(cookie)
        if session is not None:
            return session.user, session.csrf, "session"
    csrf = request.cookies.get(CSRF_COOKIE, "")
    if not opened.configured():
        return LOCAL_ADMIN, csrf, "local"
    return None, csrf, "anonymous"


class Authenticate:
    """Pure ASGI middleware saying who each HTTP request acts as (``request.state.user``,
    ``csrf_token``, ``auth``) and refusing unknown tokens and, on an open server, foreign hosts.

    Not Starlette's ``BaseHTTPMiddleware``: that one runs the app in a task of its own and pipes the
    response through a memory stream, several event-loop switches per request that the webhook
    answers' p99 paid for while runs executed."""

    def __init__(self, app: ASGIApp, state: ServerState, opened: _OpenCheck) -> None:
        self.app = app
        self.state = state
        self.opened = opened

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Identify the request, then pass it on (adding a CSRF cookie to the answer if it had none)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if (
            "authorization" not in request.headers
            and SESSION_COOKIE not in request.cookies
            and self.opened.known() is not None
        ):
            user, csrf, how = _identify(self.state, self.opened, request)  # no I/O: nothing to look up
        else:
            user, csrf, how = await run_in_threadpool(_identify, self.state, self.opened, request)
        if how == "invalid":
            await _error(401, "invalid_token", "the bearer token is unknown or revoked")(scope, receive, send)
            return
        if how == "local" and not is_loopback(_host_name(request.headers.get("host", ""))):
            refusal = _error(
                403, "bad_host", "an open server (no users, no tokens) answers loopback names only"
            )
            await refusal(scope, receive, send)
            return
        new_csrf = ""
        if not csrf:
            csrf = new_csrf = secrets.token_urlsafe(32)
        request.state.user = user
        request.state.csrf_token = csrf
        request.state.auth = how
        if not new_csrf or how not in ("anonymous", "local"):
            await self.app(scope, receive, send)
            return
        carrier = Response()
        carrier.set_cookie(
            CSRF_COOKIE,
            new_csrf,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
        cookies = [value for name, value in carrier.raw_headers if name == b"set-cookie"]

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.extend((b"set-cookie", value) for value in cookies)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


class Background(Protocol):
    """A background service the app starts and stops with itself (schedules, notifications)."""

    def start(self) -> None:
        """Start its threads."""

    def stop(self) -> None:
        """Stop its threads."""


def create_app(
    state: ServerState, pool: RunnerPool | None = None, services: Sequence[Background] = ()
) -> FastAPI:
    """The application serving ``state`` (``pool``, when given, runs the queue while it serves;
    ``services`` run beside it)."""

    from buildyard.server.metrics import Exposition  # noqa: PLC0415
    from buildyard.server.web.data import warm as warm_dashboard  # noqa: PLC0415

    exposition = Exposition(state)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        exposition.warm()  # the first scrape of a large history need not wait for the scan
        warm_dashboard(state)  # nor the first view of the dashboard for its rollups
        if pool is not None:
            await run_in_threadpool(pool.start)
        for service in services:
            await run_in_threadpool(service.start)
        try:
            yield
        finally:
            for service in reversed(services):
                await run_in_threadpool(service.stop)
            if pool is not None:
                await run_in_threadpool(pool.stop)

    app = FastAPI(
        title="buildyard server",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # /docs is the dashboard's API reference page, rendered here (no CDN)
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.state.server = state
    app.state.pool = pool
    app.state.exposition = exposition
    opened = _OpenCheck(state)

    app.add_middleware(Authenticate, state=state, opened=opened)

    from buildyard.server.api import router  # noqa: PLC0415
    from buildyard.server.common import install_errors  # noqa: PLC0415
    from buildyard.server.hooks import api_router as hooks_api_router  # noqa: PLC0415
    from buildyard.server.hooks import router as hooks_router  # noqa: PLC0415
    from buildyard.server.login import router as login_router  # noqa: PLC0415
    from buildyard.server.metrics import router as metrics_router  # noqa: PLC0415

    install_errors(app)
    app.include_router(router)
    app.include_router(hooks_api_router)
    app.include_router(hooks_router)
    app.include_router(login_router)
    app.include_router(metrics_router)
    from buildyard.server.web import dashboard_router  # noqa: PLC0415

    app.include_router(dashboard_router(state))
    return app
