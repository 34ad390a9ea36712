"""A dashboard app on its own: the router plus a fixed user, for tests, benchmarks and local viewing.

The real server (``server/app.py``) sets ``request.state.user`` and ``csrf_token`` from its session
and token middleware; here one middleware sets them from ``user`` (a ``name``/``role`` pair, or None
for an anonymous visitor), or from the ``X-Test-User: NAME:ROLE`` header when ``header_users`` is set.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request, Response

from buildyard.server.web.routes import dashboard_router
from buildyard.server.web.source import DashboardSource


@dataclass(frozen=True)
class User:
    """A signed-in user as the dashboard sees one."""

    name: str
    role: str


def create_dashboard_app(
    source: DashboardSource,
    *,
    user: User | None = User("admin", "admin"),
    csrf_token: str = "test-csrf-token",  # noqa: S107 - a fixed token for tests, not a secret
    header_users: bool = False,
) -> FastAPI:
    """A FastAPI app serving the dashboard of ``source`` as ``user``."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def _identity(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        who = user
        given = request.headers.get("x-test-user") if header_users else None
        if given is not None:
            name, _, role = given.partition(":")
            who = User(name, role) if name else None
        request.state.user = who
        request.state.csrf_token = csrf_token
        return await call_next(request)

    app.include_router(dashboard_router(source))
    return app
