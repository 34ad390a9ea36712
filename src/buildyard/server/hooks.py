"""Webhook routes: ``POST /hooks/{github,gitlab,generic}[/{project}]`` and the delivery log API.

A route only bounds and reads the body (streamed, at most 25 MB: 413 beyond, before anything is
parsed), finds the project (from the URL, or from the repository the payload names) and hands the
raw delivery to ``ServerState.receive`` in a worker thread: authentication, the delivery log,
deduplication and the queue insert happen there in one transaction. The answer comes back at once;
fetching the commit, reading its ``buildyard.yml`` and matching ``on:`` happen in the runner.

Answers: 202 queued/ignored/skipped (with the reason), 200 ping or ``{"duplicate": true}``, 401 bad
signature (nothing queued), 413 too large, 400 malformed, 404 no served project for the repository.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from buildyard.server.auth import Role
from buildyard.server.common import ApiError, actor, call, read_input, require, server
from buildyard.triggers.deliveries import DeliveryRecord, event_json
from buildyard.triggers.webhooks import (
    MAX_BODY_BYTES,
    DeliveryError,
    Source,
    check_size,
    parse_json,
)

#: Fields of a GitHub ``repository`` / GitLab ``project`` block that name the repository.
_REPOSITORY_FIELDS = (
    "full_name",
    "path_with_namespace",
    "clone_url",
    "html_url",
    "ssh_url",
    "git_http_url",
    "git_ssh_url",
    "url",
)

router = APIRouter(tags=["hooks"])
api_router = APIRouter(prefix="/api/v1", tags=["api"])


def _source(kind: str) -> Source:
    try:
        return Source(kind)
    except ValueError:
        raise ApiError(404, "not_found", f"no hook '{kind:.40}' (github, gitlab or generic)") from None


async def _body(request: Request) -> bytes:
    """The body, read in chunks and refused (413) as soon as it passes the limit."""
    try:
        check_size(request.headers.get("content-length"))
    except DeliveryError as exc:
        raise ApiError(
            exc.http_status, "too_large" if exc.http_status == 413 else "invalid", str(exc)
        ) from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(
                413, "too_large", f"the delivery is larger than the limit of {MAX_BODY_BYTES} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _named_repositories(source: Source, body: bytes) -> list[str]:
    """The repository names and URLs an (unverified) payload claims, to find its project."""
    try:
        data = parse_json(body)
    except DeliveryError as exc:
        raise ApiError(exc.http_status, "invalid", str(exc)) from None
    if source is Source.GENERIC:
        return [data["repository"]] if isinstance(data.get("repository"), str) else []
    key = "repository" if source is Source.GITHUB else "project"
    found: list[str] = []
    for block in (data.get(key), data.get("repository")):
        if isinstance(block, dict):
            for field in (
                "full_name",
                "path_with_namespace",
                "clone_url",
                "html_url",
                "ssh_url",
                "git_http_url",
                "git_ssh_url",
                "url",
            ):
                value = block.get(field)
                if isinstance(value, str) and len(value) <= 1024:
                    found.append(value)
    return found


async def _deliver(request: Request, kind: str, project: str | None) -> Response:
    source = _source(kind)
    state = server(request)
    body = await _body(request)
    if project is None:
        # parsing up to 25 MB of JSON is CPU work: off the event loop, like the delivery itself
        names = await run_in_threadpool(_named_repositories, source, body)
        project = state.project_for_repository(names)
        if project is None:
            raise ApiError(
                404,
                "unknown_repository",
                "no served project has the repository this delivery names "
                f"(use the per-project URL /hooks/{source.value}/PROJECT)",
            )
    else:
        state.project(project)  # 404 for an unknown project
    headers = dict(request.headers.items())
    result = await run_in_threadpool(state.receive, source.value, project, headers, body)
    if result.run_id is not None:
        pool = request.app.state.pool
        if pool is not None:
            pool.wake()
    payload = result.to_json()
    payload["project"] = project
    return JSONResponse(payload, status_code=result.http_status)


@router.post("/hooks/{kind}", status_code=202)
async def hook(request: Request, kind: str) -> Response:
    """A delivery matched to its project by the repository it names."""
    return await _deliver(request, kind, None)


@router.post("/hooks/{kind}/{project}", status_code=202)
async def project_hook(request: Request, kind: str, project: str) -> Response:
    """A delivery for ``project``."""
    return await _deliver(request, kind, project)


def delivery_json(record: DeliveryRecord) -> dict[str, Any]:
    """One logged delivery as JSON (headers never carry secrets)."""
    return {
        "id": record.id,
        "source": record.source,
        "delivery_id": record.delivery_id,
        "project": record.project,
        "event": record.event,
        "received_at": record.received_at,
        "verdict": record.verdict.value,
        "reason": record.reason,
        "headers": record.headers,
        "run_id": record.run_id,
        "trigger": None if record.trigger is None else event_json(record.trigger),
    }


@api_router.get("/projects/{project}/deliveries")
def deliveries(request: Request, project: str, limit: int = 50) -> dict[str, Any]:
    """The project's webhook deliveries, newest first (``run_id`` is the queue entry it queued)."""
    require(request, Role.VIEWER, project)
    rows = server(request).deliveries(project).recent(project=project, limit=max(1, min(limit, 500)))
    return {"deliveries": [delivery_json(r) for r in rows]}


@api_router.post("/projects/{project}/deliveries/{delivery}/redeliver", status_code=202)
async def redeliver(request: Request, project: str, delivery: int) -> Response:
    """Queue the event of a logged delivery again (maintainers)."""
    require(request, Role.MAINTAINER, project)
    await read_input(request)  # a form post must carry the CSRF token
    state = server(request)
    result = await call(
        request,
        "delivery.redeliver",
        f"{project}#{delivery}",
        lambda: state.redeliver(project, delivery, actor=actor(request)),
    )
    pool = request.app.state.pool
    if pool is not None:
        pool.wake()
    return JSONResponse(result.to_json(), status_code=202)
