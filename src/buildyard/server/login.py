"""The login page (user + password → session cookie) and logout.

The session cookie is HttpOnly, SameSite=Lax, and Secure when the request came over HTTPS. The login
form itself carries a CSRF token (the ``by_csrf`` cookie's value, checked on post). After
``auth.FREE_FAILURES`` failed attempts for a user name or from an address, each further attempt
must wait (doubling up to five minutes) and is answered 429 with ``Retry-After`` meanwhile, whether
or not the password is right.
"""

from __future__ import annotations

import hmac
import html
import math
import urllib.parse

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from buildyard.server.common import MAX_BODY, address, read_input, safe_next, server

router = APIRouter(include_in_schema=False)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>buildyard: log in</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:22rem;margin:4rem auto;padding:0 1rem}}
label{{display:block;margin:.8rem 0 .2rem}} input{{width:100%;padding:.4rem;box-sizing:border-box}}
button{{margin-top:1rem;padding:.5rem 1rem}} .error{{border-left:4px solid;padding-left:.5rem}}
@media (prefers-color-scheme: dark){{body{{background:#111;color:#eee}}}}
</style></head>
<body><h1>buildyard</h1>{message}
<form method="post" action="/login">
<input type="hidden" name="csrf_token" value="{csrf}"><input type="hidden" name="next" value="{next}">
<label for="user">User</label><input id="user" name="user" autocomplete="username" required value="{user}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Log in</button></form></body></html>
"""


def _page(
    request: Request, *, message: str = "", user: str = "", target: str = "/", status: int = 200
) -> HTMLResponse:
    note = f'<p class="error" role="alert">✗ {html.escape(message)}</p>' if message else ""
    body = _PAGE.format(
        message=note,
        csrf=html.escape(getattr(request.state, "csrf_token", "")),
        next=html.escape(safe_next(target)),
        user=html.escape(user[:100]),
    )
    return HTMLResponse(body, status_code=status)


@router.get("/login")
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    """The login form."""
    return _page(request, target=next)


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the password; on success open a session and go to ``next``."""
    from buildyard.server.app import CSRF_COOKIE, SESSION_COOKIE  # noqa: PLC0415

    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return _page(request, message="request too large", status=413)
    fields = dict(urllib.parse.parse_qsl(body.decode(errors="replace"), keep_blank_values=True))
    name, password = fields.get("user", "")[:100], fields.get("password", "")[:1000]
    target = safe_next(fields.get("next", "/"))
    expected = request.cookies.get(CSRF_COOKIE, "")
    given = fields.get("csrf_token", "")
    if not expected or not given or not hmac.compare_digest(expected, given):
        return _page(
            request, message="the form expired; please try again", user=name, target=target, status=403
        )
    state = server(request)
    keys = [f"user:{name}", f"addr:{address(request)}"]
    wait = await run_in_threadpool(state.auth.login_delay, keys)
    if wait > 0:
        response = _page(
            request,
            message=f"too many failed logins: try again in {math.ceil(wait)} s",
            user=name,
            target=target,
            status=429,
        )
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    user = await run_in_threadpool(state.auth.check_password, name, password)
    if user is None:
        await run_in_threadpool(state.auth.login_failed, keys)
        await run_in_threadpool(
            state.audit.record,
            actor=name or "?",
            action="login",
            obj=name,
            address=address(request),
            result="error:password",
        )
        return _page(request, message="wrong user name or password", user=name, target=target, status=401)
    await run_in_threadpool(state.auth.login_succeeded, keys)
    value, _session = await run_in_threadpool(state.auth.open_session, user)
    await run_in_threadpool(
        state.audit.record, actor=user.name, action="login", obj=user.name, address=address(request)
    )
    redirect = RedirectResponse(target, 303)
    redirect.set_cookie(
        SESSION_COOKIE,
        value,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return redirect


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session (the form carries the CSRF token)."""
    from buildyard.server.app import SESSION_COOKIE  # noqa: PLC0415

    await read_input(request)
    value = request.cookies.get(SESSION_COOKIE, "")
    if value:
        await run_in_threadpool(server(request).auth.close_session, value)
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
