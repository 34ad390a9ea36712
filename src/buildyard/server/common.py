"""What every server route shares: errors as ``{"code", "message"}``, who the request is and what
it may do, reading a JSON or form body (with the CSRF check), answering a browser form with a
redirect, running a service call off the event loop with its audit entry, and the JSON of queue
entries (runs and jobs are ``buildyard.views`` objects, shown ``Remote``).
"""

from __future__ import annotations

import hmac
import json
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from buildyard.errors import NotFoundError, StoreError, UserError
from buildyard.server.auth import Role, User
from buildyard.server.queue import AlreadyFinished, Entry
from buildyard.server.state import ServerState

T = TypeVar("T")
MAX_BODY = 256 * 1024


class ApiError(UserError):
    """An error answered as ``{"code", "message"}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _json_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def install_errors(app: FastAPI) -> None:
    """Answer every error as ``{"code", "message"}`` (never a traceback)."""

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _json_error(exc.status, exc.code, exc.message)

    @app.exception_handler(UserError)
    async def user_error(_request: Request, exc: UserError) -> JSONResponse:
        from buildyard.termtext import safe_text  # noqa: PLC0415

        message = safe_text(str(exc))
        if isinstance(exc, NotFoundError):
            return _json_error(404, "not_found", message)
        if isinstance(exc, StoreError):
            return _json_error(503, "unavailable", message)
        if isinstance(exc, AlreadyFinished):
            return _json_error(409, "conflict", message)
        return _json_error(400, "invalid", message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated", 403: "forbidden"}
        return _json_error(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, _exc: Exception) -> JSONResponse:
        # a bug: the client gets one line; Starlette re-raises it, so the server's log gets the traceback
        return _json_error(500, "internal", "internal error (the server's log has the details)")

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _json_error(400, "invalid", f"{where}: {first.get('msg', 'invalid request')}")


# --- helpers -----------------------------------------------------------------------------------------


def server(request: Request) -> ServerState:
    """The state the app serves."""
    state: ServerState = request.app.state.server
    return state


def user_of(request: Request) -> User | None:
    """Who the request acts as (set by the middleware)."""
    return getattr(request.state, "user", None)


def require(request: Request, role: Role, project: str | None = None) -> User | None:
    """Refuse unless the request may act with ``role`` (anonymous reads of an open project pass)."""
    user = user_of(request)
    if user is None:
        if role == Role.VIEWER and project is not None:
            config = server(request).config.project(project)
            if config is not None and config.anonymous_read:
                return None
        raise ApiError(401, "unauthenticated", "log in or send 'Authorization: Bearer TOKEN'")
    if not user.may(role):
        raise ApiError(403, "forbidden", f"{role.label} role required (you are {user.role})")
    if project is not None:
        server(request).project(project)  # 404 for an unknown project
    return user


def actor(request: Request) -> str:
    """The name recorded for the request's actions."""
    user = user_of(request)
    return user.name if user is not None else "anonymous"


def address(request: Request) -> str:
    """The client's address."""
    return request.client.host if request.client else ""


async def read_input(request: Request) -> dict[str, Any]:
    """The body as a dict (JSON or form fields); a form must carry the CSRF token."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise ApiError(413, "too_large", f"the request body is larger than {MAX_BODY // 1024} KiB")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    data: dict[str, Any]
    if kind == "application/json":
        try:
            parsed = json.loads(body or b"{}")
        except ValueError:
            raise ApiError(400, "invalid", "the body is not valid JSON") from None
        if not isinstance(parsed, dict):
            raise ApiError(400, "invalid", "the body must be a JSON object")
        data = parsed
        form = False
    else:
        pairs = urllib.parse.parse_qsl(body.decode(errors="replace"), keep_blank_values=True)
        data = {}
        variables: dict[str, str] = {}
        for key, value in pairs:
            if key.startswith("var."):
                variables[key[4:]] = value
            else:
                data[key] = value
        if variables:
            data["variables"] = variables
        form = True
    how = getattr(request.state, "auth", "anonymous")
    # A cross-site page can post a form (or text/plain) with the user's cookies, but cannot send
    # JSON without a CORS preflight (which this server never grants): forms need the token.
    if form and how != "bearer":
        given = str(data.get("csrf_token") or request.headers.get("x-csrf-token", ""))
        expected = getattr(request.state, "csrf_token", "")
        if not given or not expected or not hmac.compare_digest(given, expected):
            raise ApiError(403, "csrf", "missing or wrong CSRF token (reload the page and try again)")
    data["_form"] = form
    return data


def done(request: Request, data: dict[str, Any], payload: Any, status: int = 200) -> Response:
    """JSON for API clients; for a browser form post, a redirect back (303)."""
    wants_html = "text/html" in request.headers.get("accept", "")
    if data.get("_form") and wants_html:
        return RedirectResponse(
            safe_next(str(data.get("next") or ""), request.headers.get("referer", "")), 303
        )
    return JSONResponse(payload, status_code=status)


def safe_next(target: str, referer: str = "") -> str:
    """A same-site path to go back to (never another site)."""
    for candidate in (target, urllib.parse.urlsplit(referer).path if referer else ""):
        if candidate.startswith("/") and not candidate.startswith(("//", "/\\")) and len(candidate) < 2000:
            return candidate
    return "/"


async def call(request: Request, action: str, obj: str, fn: Callable[[], T], *, audit: bool = True) -> T:
    """Run ``fn`` in a worker thread; record a state-changing action in the audit log."""
    state = server(request)
    try:
        result = await run_in_threadpool(fn)
    except (ApiError, UserError) as exc:
        if audit:
            code = exc.code if isinstance(exc, ApiError) else type(exc).__name__
            await run_in_threadpool(
                state.audit.record,
                actor=actor(request),
                action=action,
                obj=obj,
                address=address(request),
                result=f"error:{code}"[:32],
            )
        raise
    if audit:
        await run_in_threadpool(
            state.audit.record, actor=actor(request), action=action, obj=obj, address=address(request)
        )
    return result


def entry_json(entry: Entry) -> dict[str, Any]:
    """A queue entry as JSON."""
    return {
        "id": entry.id,
        "project": entry.project,
        "status": entry.status,
        "event": entry.event,
        "branch": entry.branch,
        "sha": entry.sha,
        "variables": entry.variables,
        "requested_by": entry.requested_by,
        "enqueued_at": entry.enqueued_at,
        "started_at": entry.started_at,
        "finished_at": entry.finished_at,
        "queue_s": entry.queue_s,
        "run_id": entry.run_id,
        "run_number": entry.run_number,
        "retry_of": entry.retry_of,
        "message": entry.message,
        "triggered_by": entry.triggered_by,
        "chain_depth": entry.chain_depth,
    }
