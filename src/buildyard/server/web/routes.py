"""The dashboard's HTTP face: one route per view, HTML or the same data as JSON, SSE log follow.

Routes only map HTTP: they read parameters, call one ``data`` function in a worker thread (FastAPI
runs sync handlers in its thread pool, so a slow disk never stalls the event loop), and render a
template or JSON. Who may see what is decided from ``request.state.user`` (set by the server's auth
middleware): anonymous visitors go to ``/login`` unless the project allows anonymous reads, and a
button is only drawn for a role allowed to press it (the API checks again).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from buildyard.errors import BuildyardError, NotFoundError, UserError
from buildyard.server.web import apidocs, data, logview, svg
from buildyard.server.web.queries import RunFilter
from buildyard.server.web.source import DashboardSource, ProjectInfo

HERE = Path(__file__).parent
STATIC_PREFIX = "/static/web/"
ROLES = ("viewer", "operator", "maintainer", "admin")
#: What each button needs (the API enforces the same).
NEEDS: Mapping[str, str] = {
    "trigger": "operator",
    "cancel": "operator",
    "retry": "operator",
    "approve": "maintainer",
    "reject": "maintainer",
    "rollback": "maintainer",
}
#: How often the browser re-reads a live page, and how often a log follow looks for new bytes.
POLL_S = 2
FOLLOW_POLL_S = 0.1
STATUS_POLL_S = 0.5
HEARTBEAT_S = 15.0
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def _static_files() -> dict[str, tuple[bytes, str]]:
    out: dict[str, tuple[bytes, str]] = {}
    for path in sorted((HERE / "static").rglob("*")):
        if path.is_file() and path.suffix in _STATIC_TYPES:
            out[path.relative_to(HERE / "static").as_posix()] = (
                path.read_bytes(),
                _STATIC_TYPES[path.suffix],
            )
    return out


# --- formatting for templates --------------------------------------------------------------------


def fmt_duration(seconds: float | None) -> str:
    """``1h 2m``, ``3m 4s``, ``5.2s``, ``-`` for None."""
    if seconds is None:
        return "-"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m {int(s % 60)}s"
    return f"{int(s // 3600)}h {int(s % 3600 // 60)}m"


def fmt_when(ts: float | None) -> str:
    """UTC time of an epoch timestamp."""
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + " UTC"


def fmt_pct(value: float | None) -> str:
    """``97.5%`` or ``-``."""
    return "-" if value is None else f"{value * 100:.1f}%"


def fmt_bytes(value: float | None) -> str:
    """``12.3 MB``, or ``-`` when not measured (None, or 0 for a job too short to sample)."""
    if not value:
        return "-"
    v = float(value)
    for unit in ("B", "kB", "MB", "GB"):
        if v < 1000:
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1000
    return f"{v:.1f} TB"


def _q(text: object) -> str:
    return urllib.parse.quote(str(text), safe="")


def make_templates() -> Environment:
    """The Jinja environment of the dashboard (autoescaped; helpers as filters and globals)."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(dur=fmt_duration, when=fmt_when, pct=fmt_pct, nbytes=fmt_bytes, q=_q, icon=svg.icon)
    env.globals.update(
        static=lambda name: STATIC_PREFIX + name,
        dag_svg=lambda dag, base: Markup(svg.dag_svg(dag, base=base)),  # noqa: S704 - names escaped in svg
        gantt_svg=lambda g, base: Markup(svg.gantt_svg(g, base=base)),  # noqa: S704 - names escaped in svg
        spark_svg=lambda values: Markup(svg.sparkline_svg(values)),  # noqa: S704 - numbers only
        tojson=lambda value: json.dumps(value, allow_nan=False),  # a str: autoescaped in its attribute
    )
    return env


# --- request helpers ------------------------------------------------------------------------------


def wants_json(request: Request) -> bool:
    """JSON when asked by ``?format=json`` or an ``Accept`` preferring ``application/json``."""
    fmt = request.query_params.get("format")
    if fmt:
        return fmt == "json"
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _user(request: Request) -> Any:
    return getattr(request.state, "user", None)


def role_allows(user: Any, action: str) -> bool:
    """Whether ``user`` (None: anonymous) has the role ``action`` needs."""
    if user is None:
        return False
    role = str(getattr(user, "role", ""))
    return role in ROLES and ROLES.index(role) >= ROLES.index(NEEDS[action])


class _Denied(UserError):
    """An anonymous visitor on a project without anonymous reads."""


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def _here(request: Request) -> str:
    """This page's URL (path and query) without the ``fragment`` parameter the live updates add."""
    query = urllib.parse.urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "fragment"])
    return str(request.url.path) + (f"?{query}" if query else "")


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def dashboard_router(source: DashboardSource) -> APIRouter:
    """The dashboard's routes over ``source`` (include it in the server's app)."""
    router = APIRouter()
    templates = make_templates()
    static = _static_files()

    def project_info(name: str) -> ProjectInfo:
        for p in source.projects():
            if p.name == name:
                return p
        raise NotFoundError(f"no project '{name}'")

    def check_read(request: Request, project: str) -> ProjectInfo:
        info = project_info(project)
        if _user(request) is None and not info.anonymous_read:
            raise _Denied
        return info

    def render(
        request: Request, template: str, payload: dict[str, Any], *, status: int = 200, **extra: Any
    ) -> Response:
        if wants_json(request):
            body = json.dumps(payload, default=_json_default, allow_nan=False)
            return _security_headers(Response(body, status_code=status, media_type="application/json"))
        user = _user(request)
        context = {
            "request": request,
            "d": payload,
            "user": user,
            "csrf_token": getattr(request.state, "csrf_token", ""),
            "can": {action: role_allows(user, action) for action in NEEDS},
            "here": _here(request),
            "poll_s": POLL_S,
            **extra,
        }
        html = templates.get_template(template).render(context)
        return _security_headers(HTMLResponse(html, status_code=status))

    def guarded(request: Request, build: Callable[[], Response]) -> Response:
        """Run a view: denied → login (HTML) or 401 (JSON); not found → 404; bad input → 400."""
        try:
            return build()
        except _Denied:
            if wants_json(request):
                return _security_headers(
                    JSONResponse(
                        {"code": "unauthenticated", "message": "log in to see this"}, status_code=401
                    )
                )
            target = str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={_q(target)}", status_code=303)
        except NotFoundError as exc:
            return render(request, "error.html", {"code": "not_found", "message": str(exc)}, status=404)
        except (ValueError, BuildyardError) as exc:
            return render(request, "error.html", {"code": "bad_request", "message": str(exc)}, status=400)

    def _int(request: Request, name: str, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"parameter '{name}' must be a whole number, not {raw[:40]!r}") from None

    @router.get(STATIC_PREFIX + "{name:path}", include_in_schema=False)
    def static_file(name: str) -> Response:
        found = static.get(name)
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        body, media = found
        return Response(body, media_type=media, headers={"Cache-Control": "public, max-age=3600"})

    @router.get("/docs", include_in_schema=False)
    def api_docs(request: Request) -> Response:
        """The API reference, rendered from the OpenAPI document (no script, no CDN)."""
        return render(request, "apidocs.html", apidocs.reference(request.app.openapi()))

    @router.get("/", include_in_schema=False)
    def projects_view(request: Request) -> Response:
        def build() -> Response:
            user = _user(request)
            visible = [p for p in source.projects() if user is not None or p.anonymous_read]
            if not visible:
                raise _Denied
            return render(
                request, "projects.html", data.projects_data(source, names={p.name for p in visible})
            )

        return guarded(request, build)

    @router.get("/p/{project}", include_in_schema=False)
    def runs_view(request: Request, project: str) -> Response:
        def build() -> Response:
            check_read(request, project)
            qp = request.query_params
            flt = RunFilter(
                branch=qp.get("branch", "")[:500],
                event=qp.get("event", "")[:32],
                status=qp.get("status", "")[:16],
                who=qp.get("who", "")[:200],
            )
            params = data.RunsParams(
                flt=flt, cursor=qp.get("cursor", "")[:200], limit=_int(request, "limit", data.PAGE_SIZE)
            )
            payload = data.runs_data(source, project, params)
            if qp.get("fragment") == "rows" and not wants_json(request):
                return render(request, "_runs_rows.html", payload)
            return render(request, "runs.html", payload)

        return guarded(request, build)

    @router.get("/p/{project}/runs/{run}", include_in_schema=False)
    def run_view(request: Request, project: str, run: str) -> Response:
        def build() -> Response:
            check_read(request, project)
            payload = data.run_data(source, project, run)
            base = f"/p/{_q(project)}/runs/{_q(payload['run']['id'])}"
            if request.query_params.get("fragment") == "body" and not wants_json(request):
                return render(request, "_run_body.html", payload, base=base)
            return render(request, "run.html", payload, base=base)

        return guarded(request, build)

    @router.get("/p/{project}/runs/{run}/jobs/{job}/log", include_in_schema=False)
    def log_view(request: Request, project: str, run: str, job: str) -> Response:
        def build() -> Response:
            check_read(request, project)
            raw_offset = request.query_params.get("offset")
            offset = _int(request, "offset", 0) if raw_offset else None
            payload = data.log_data(source, project, run, job, offset=offset)
            base = f"/p/{_q(project)}/runs/{_q(payload['run']['id'])}/jobs/{_q(job)}/log"
            return render(request, "log.html", payload, base=base)

        return guarded(request, build)

    @router.get("/p/{project}/runs/{run}/jobs/{job}/log/raw", include_in_schema=False)
    def log_raw(request: Request, project: str, run: str, job: str) -> Response:
        def build() -> Response:
            check_read(request, project)
            record = source.history(project).get_run(run)
            path = source.log_file(project, record.id, job)
            name = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{record.number}-{job}.log")
            headers = {"Content-Disposition": f'attachment; filename="{name}"'}
            media = "text/plain; charset=utf-8"
            if path is None:  # a cache hit: the log stored with its cache entry
                cached = data.cached_job_log(source, project, record.id, job)
                if cached is None:
                    raise NotFoundError(f"job '{job}' of run #{record.number} has no log")
                return _security_headers(Response(cached, media_type=media, headers=headers))
            return _security_headers(
                StreamingResponse(logview.iter_raw(path), media_type=media, headers=headers)
            )

        return guarded(request, build)

    @router.get("/p/{project}/runs/{run}/jobs/{job}/log/stream", include_in_schema=False)
    async def log_stream(request: Request, project: str, run: str, job: str) -> Response:
        try:
            await asyncio.to_thread(check_read, request, project)
            record = await asyncio.to_thread(lambda: source.history(project).get_run(run))
        except _Denied:
            return JSONResponse({"code": "unauthenticated", "message": "log in to see this"}, status_code=401)
        except BuildyardError as exc:
            return JSONResponse({"code": "not_found", "message": str(exc)}, status_code=404)
        resume = request.headers.get("last-event-id", "")
        try:
            if resume:
                off_text, _, line_text = resume.partition(":")
                offset, line = int(off_text), int(line_text)
            else:
                offset = int(request.query_params.get("offset", "0"))
                line = int(request.query_params.get("line", "1"))
        except ValueError:
            return JSONResponse(
                {"code": "bad_request", "message": "offset and line must be whole numbers"}, status_code=400
            )
        events = _follow(source, project, record.id, job, max(offset, 0), max(line, 1), request)
        return _security_headers(
            StreamingResponse(
                events,
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        )

    @router.get("/p/{project}/metrics", include_in_schema=False)
    def metrics_view(request: Request, project: str) -> Response:
        def build() -> Response:
            check_read(request, project)
            payload = data.metrics_data(
                source,
                project,
                days=_int(request, "days", 30),
                branch=request.query_params.get("branch", "")[:500],
            )
            return render(request, "metrics.html", payload)

        return guarded(request, build)

    @router.get("/p/{project}/tests", include_in_schema=False)
    def tests_view(request: Request, project: str) -> Response:
        def build() -> Response:
            check_read(request, project)
            qp = request.query_params
            payload = data.tests_data(
                source,
                project,
                days=_int(request, "days", 14),
                run_ref=qp.get("run", "")[:100],
                test=qp.get("test", "")[:1000],
            )
            return render(request, "tests.html", payload)

        return guarded(request, build)

    @router.get("/p/{project}/artifacts", include_in_schema=False)
    def artifacts_view(request: Request, project: str) -> Response:
        def build() -> Response:
            check_read(request, project)
            qp = request.query_params
            if qp.get("view"):
                doc = data.artifact_document(source, project, qp.get("ref", "")[:400], qp["view"])
                return render(request, "document.html", doc, pretty=json.dumps(doc["document"], indent=2))
            return render(request, "artifacts.html", data.artifacts_data(source, project))

        return guarded(request, build)

    return router


async def _follow(
    source: DashboardSource, project: str, run_id: str, job_id: str, offset: int, line: int, request: Request
) -> AsyncIterator[str]:
    """Server-sent events of a job's new log lines until it finishes (then an ``end`` event).

    The file is polled every ``FOLLOW_POLL_S`` (a line reaches the browser well within 0.5 s); the
    job's status every ``STATUS_POLL_S``. Each event's id is ``offset:line`` so that a reconnecting
    browser resumes where it stopped.
    """
    last_status_check = 0.0
    last_sent = time.monotonic()
    status = ""
    path: Path | None = None
    yield "retry: 1000\n\n"
    while True:
        if await request.is_disconnected():
            return
        now = time.monotonic()
        if now - last_status_check >= STATUS_POLL_S:
            last_status_check = now
            status = await asyncio.to_thread(_job_status, source, project, run_id, job_id)
        final = status in data.FINAL_JOB or status == ""
        if path is None:
            path = await asyncio.to_thread(source.log_file, project, run_id, job_id)
        lines: list[logview.LogLine] = []
        if path is not None:
            lines, offset = await asyncio.to_thread(logview.read_new, path, offset, line, final=final)
        if lines:
            line += len(lines)
            payload = json.dumps({"lines": [{"n": ln.number, "html": ln.html} for ln in lines]})
            yield f"id: {offset}:{line}\nevent: lines\ndata: {payload}\n\n"
            last_sent = now
            continue  # more may be waiting: read again at once
        if final:
            yield f"event: end\ndata: {json.dumps({'status': status or 'unknown'})}\n\n"
            return
        if now - last_sent > HEARTBEAT_S:
            yield ": keep-alive\n\n"
            last_sent = now
        await asyncio.sleep(FOLLOW_POLL_S)


def _job_status(source: DashboardSource, project: str, run_id: str, job_id: str) -> str:
    job = next((j for j in source.history(project).jobs(run_id) if j.id == job_id), None)
    return job.status if job is not None else ""
