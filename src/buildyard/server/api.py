"""``/api/v1``: projects, runs, jobs, logs, deployments, secrets, tokens and the audit log.

Routes only map HTTP to ``ServerState`` (blocking calls run in worker threads) and check roles.
Errors are JSON ``{"code": ..., "message": ...}`` with stable codes: ``unauthenticated`` (401),
``invalid_token`` (401), ``forbidden`` (403), ``csrf`` (403), ``not_found`` (404), ``invalid`` (400),
``conflict`` (409), ``too_large`` (413), ``unavailable`` (503), ``internal`` (500). State-changing
routes accept a JSON body (``Content-Type: application/json``) or form fields; a form post must carry
the CSRF token (field ``csrf_token`` or header ``X-CSRF-Token``) and, from a browser
(``Accept: text/html``), is answered with a redirect (303) to ``next`` or the Referer.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from buildyard.errors import NotFoundError
from buildyard.server.auth import Role
from buildyard.server.common import (
    ApiError,
    actor,
    call,
    done,
    entry_json,
    read_input,
    require,
    server,
    user_of,
)
from buildyard.server.queue import HOLDING, WANTING
from buildyard.views import DeploymentView, Remote, RunView

MAX_LOG_CHUNK = 4 * 1024 * 1024
DEFAULT_LOG_CHUNK = 1024 * 1024

router = APIRouter(prefix="/api/v1", tags=["api"])


def _wake(request: Request) -> None:
    pool = request.app.state.pool
    if pool is not None:
        pool.wake()


# --- routes ------------------------------------------------------------------------------------------


@router.get("/me")
def me(request: Request) -> dict[str, Any]:
    """Who this request acts as."""
    user = user_of(request)
    out: dict[str, Any] = {"name": user.name, "role": user.role} if user else {"name": None, "role": None}
    if getattr(request.state, "auth", "") in ("session", "local", "anonymous"):
        out["csrf_token"] = getattr(request.state, "csrf_token", "")  # for forms posted by scripts
    return out


@router.get("/projects")
def projects(request: Request) -> dict[str, Any]:
    """Projects this request may read, with their queued and executing runs counted."""
    state = server(request)
    user = user_of(request)
    counts = state.run_queue.counts()
    out = []
    for p in state.config.projects:
        if user is None and not p.anonymous_read:
            continue
        out.append(
            {
                "name": p.name,
                "default_branch": p.default_branch,
                "anonymous_read": p.anonymous_read,
                "queued": sum(counts.get((p.name, s), 0) for s in WANTING),
                "running": sum(counts.get((p.name, s), 0) for s in HOLDING),
                "waiting": counts.get((p.name, "waiting"), 0),
            }
        )
    if user is None and not out:
        raise ApiError(401, "unauthenticated", "log in or send 'Authorization: Bearer TOKEN'")
    return {"projects": out}


@router.get("/projects/{project}/queue")
def queue(request: Request, project: str) -> dict[str, Any]:
    """Queued and executing runs of the project, oldest first."""
    require(request, Role.VIEWER, project)
    return {"queue": [entry_json(e) for e in server(request).run_queue.list(project=project)]}


@router.get("/projects/{project}/queue/{entry_id}")
def queue_entry(request: Request, project: str, entry_id: str) -> dict[str, Any]:
    """One queue entry (also finished ones)."""
    require(request, Role.VIEWER, project)
    entry = server(request).run_queue.get(entry_id)
    if entry.project != project:
        raise NotFoundError(f"no queue entry '{entry_id:.40}' in {project}")
    return entry_json(entry)


@router.get("/projects/{project}/runs")
def runs(
    request: Request,
    project: str,
    branch: str | None = None,
    event: str | None = None,
    status: str | None = None,
    trigger: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Runs newest first, filtered; ``next`` is the cursor of the following page (null at the end)."""
    require(request, Role.VIEWER, project)
    rows, nxt = server(request).list_runs(
        project, limit=limit, cursor=cursor, branch=branch, event=event, status=status, trigger=trigger
    )
    remote = Remote(project)
    return {"runs": [RunView.summary(r).to_json(remote) for r in rows], "next": nxt}


@router.post("/projects/{project}/runs", status_code=201)
async def trigger(request: Request, project: str) -> Response:
    """Queue a run: ``branch``, ``sha``, ``event`` (push), ``variables`` (object, or ``var.NAME`` fields),
    ``inputs`` of a manual run (object of names to strings, checked against ``on.manual.inputs``)."""
    require(request, Role.OPERATOR, project)
    data = await read_input(request)
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        raise ApiError(400, "invalid", "variables must be an object of names to values")
    inputs = data.get("inputs") or {}
    if not isinstance(inputs, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in inputs.items()
    ):
        raise ApiError(400, "invalid", "inputs must be an object of names to strings")
    state = server(request)
    entry = await call(
        request,
        "run.trigger",
        f"{project}@{data.get('branch') or data.get('sha') or 'default'}",
        lambda: state.trigger(
            project,
            requested_by=actor(request),
            branch=_text(data, "branch"),
            sha=_text(data, "sha"),
            event=_text(data, "event") or ("manual" if inputs else "push"),
            variables=variables,
            inputs=inputs,
        ),
    )
    _wake(request)
    return done(request, data, {"queued": entry_json(entry)}, 201)


def _text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ApiError(400, "invalid", f"{key} must be a string")
    return value


@router.get("/projects/{project}/runs/{run}")
def run(request: Request, project: str, run: str) -> dict[str, Any]:
    """One run with its jobs (``run`` is a history run id, number, or a queue entry id): the view
    ``show --json`` gives, shown ``Remote``, plus ``queue``, the queue entry that started it (or null)."""
    require(request, Role.VIEWER, project)
    state = server(request)
    try:
        view = state.run_view(project, run)
    except NotFoundError:
        entry = state.run_queue.get(run) if re.fullmatch(r"[0-9a-f]{32}", run) else None
        if entry is None or entry.project != project:
            raise
        if entry.run_id is None:
            return {"queue": entry_json(entry), "jobs": []}
        view = state.run_view(project, entry.run_id)
    payload = view.to_json(Remote(project))
    queued = state.run_queue.by_run(view.id)
    payload["queue"] = entry_json(queued) if queued is not None else None
    return payload


@router.post("/projects/{project}/runs/{run}/cancel")
async def cancel(request: Request, project: str, run: str) -> Response:
    """Cancel a queued or executing run."""
    require(request, Role.OPERATOR, project)
    data = await read_input(request)
    state = server(request)
    entry = await call(request, "run.cancel", f"{project}/{run}", lambda: state.cancel(project, run))
    _wake(request)
    return done(request, data, {"queue": entry_json(entry)})


@router.post("/projects/{project}/runs/{run}/retry", status_code=201)
async def retry(request: Request, project: str, run: str) -> Response:
    """Queue the run again at the same commit."""
    require(request, Role.OPERATOR, project)
    data = await read_input(request)
    state = server(request)
    entry = await call(
        request,
        "run.retry",
        f"{project}/{run}",
        lambda: state.retry(project, run, requested_by=actor(request)),
    )
    _wake(request)
    return done(request, data, {"queued": entry_json(entry)}, 201)


@router.get("/projects/{project}/runs/{run}/jobs")
def jobs(request: Request, project: str, run: str) -> dict[str, Any]:
    """The jobs of a run (as in the run)."""
    require(request, Role.VIEWER, project)
    remote = Remote(project)
    return {"jobs": [j.to_json(remote) for j in server(request).run_view(project, run).jobs or ()]}


@router.get("/projects/{project}/runs/{run}/jobs/{job}")
def job(request: Request, project: str, run: str, job: str) -> dict[str, Any]:
    """One job of a run (by instance id, or by job name when it names one instance)."""
    require(request, Role.VIEWER, project)
    state = server(request)
    view = state.run_view(project, run)
    found = [j for j in view.jobs or () if j.id == job] or [j for j in view.jobs or () if j.record.job == job]
    if len(found) != 1:
        raise NotFoundError(f"run #{view.record.number} has no job '{job:.100}'")
    return found[0].to_json(Remote(project))


@router.get("/projects/{project}/runs/{run}/jobs/{job}/log")
def log(
    request: Request, project: str, run: str, job: str, offset: int = 0, limit: int = DEFAULT_LOG_CHUNK
) -> Response:
    """The job's (masked) log from byte ``offset`` (or a ``Range: bytes=N-``/``bytes=-N`` tail), up to
    ``limit`` bytes; ``X-Log-Size`` gives the size now and ``X-Log-Final`` whether the job ended."""
    require(request, Role.VIEWER, project)
    state = server(request)
    record = state.job(project, run, job)
    path = state.log_file(project, run, job)
    if path is None:
        raise ApiError(
            404, "no_log", f"job '{record.id}' has no log here (cached jobs keep theirs in the cache)"
        )
    size = path.stat().st_size
    limit = max(0, min(limit, MAX_LOG_CHUNK))
    status = 200
    header = request.headers.get("range", "")
    if header:
        start, end = _parse_range(header, size)
        offset, limit, status = start, min(end - start + 1, MAX_LOG_CHUNK), 206
    offset = max(0, min(offset, size))
    data = _read(path, offset, limit)
    final = record.status not in ("pending", "running", "waiting", "retrying")
    headers = {
        "X-Log-Size": str(size),
        "X-Log-Offset": str(offset),
        "X-Log-Next": str(offset + len(data)),
        "X-Log-Final": "true" if final else "false",
        "Accept-Ranges": "bytes",
    }
    if status == 206:
        headers["Content-Range"] = (
            f"bytes {offset}-{offset + len(data) - 1}/{size}" if data else f"bytes */{size}"
        )
    return Response(data, status_code=status, media_type="text/plain; charset=utf-8", headers=headers)


def _parse_range(header: str, size: int) -> tuple[int, int]:
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if match is None or (not match.group(1) and not match.group(2)):
        raise ApiError(416, "bad_range", "Range must be 'bytes=START-', 'bytes=START-END' or 'bytes=-LAST'")
    first, last = match.groups()
    if not first:
        start = max(0, size - int(last))
        return start, size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    return start, max(end, start - 1)


def _read(path: Path, offset: int, limit: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(limit)


async def _job_action(request: Request, project: str, run: str, job: str, action: str) -> Response:
    data = await read_input(request)
    state = server(request)
    comment = _text(data, "comment") or ""
    if action == "retry":
        entry = await call(
            request,
            "job.retry",
            f"{project}/{run}/{job}",
            lambda: state.retry(project, run, requested_by=actor(request), job=job),
        )
        _wake(request)
        return done(request, data, {"queued": entry_json(entry)}, 201)
    job_id = await call(
        request,
        f"deploy.{action}",
        f"{project}/{run}/{job}",
        lambda: state.decide(project, run, job, action, actor=actor(request), comment=comment),
    )
    return done(request, data, {"job": job_id, "decision": action})


@router.post("/projects/{project}/runs/{run}/jobs/{job}/retry", status_code=201)
async def retry_job(request: Request, project: str, run: str, job: str) -> Response:
    """A new run of this job and what it needs (restored from the cache where possible)."""
    require(request, Role.OPERATOR, project)
    return await _job_action(request, project, run, job, "retry")


@router.post("/projects/{project}/runs/{run}/jobs/{job}/approve")
async def approve(request: Request, project: str, run: str, job: str) -> Response:
    """Approve a deployment job waiting for approval (``comment`` optional)."""
    require(request, Role.MAINTAINER, project)
    return await _job_action(request, project, run, job, "approve")


@router.post("/projects/{project}/runs/{run}/jobs/{job}/reject")
async def reject(request: Request, project: str, run: str, job: str) -> Response:
    """Reject a deployment job waiting for approval (``comment``: why)."""
    require(request, Role.MAINTAINER, project)
    return await _job_action(request, project, run, job, "reject")


@router.get("/projects/{project}/environments/{environment}/deployments")
def deployments(request: Request, project: str, environment: str, limit: int = 20) -> dict[str, Any]:
    """What was deployed to the environment, newest first (the objects of ``deploy history --json``)."""
    require(request, Role.VIEWER, project)
    rows = server(request).sql_history(project).deployments(environment, limit=max(1, min(limit, 200)))
    return {"deployments": [DeploymentView.from_record(r).to_json() for r in rows]}  # as `deploy history`


@router.post("/projects/{project}/environments/{environment}/rollback", status_code=201)
async def rollback(request: Request, project: str, environment: str) -> Response:
    """Queue a run redeploying the environment's previous good version (or ``version``)."""
    require(request, Role.MAINTAINER, project)
    data = await read_input(request)
    state = server(request)
    entry = await call(
        request,
        "deploy.rollback",
        f"{project}/{environment}",
        lambda: state.rollback(
            project, environment, requested_by=actor(request), version=_text(data, "version")
        ),
    )
    _wake(request)
    return done(request, data, {"queued": entry_json(entry)}, 201)


@router.get("/projects/{project}/secrets")
def secrets_list(request: Request, project: str) -> dict[str, Any]:
    """Names of the project's secrets (values are never returned)."""
    require(request, Role.MAINTAINER, project)
    return {
        "secrets": [
            {"name": s.name, "updated_at": s.updated_at, "updated_by": s.updated_by}
            for s in server(request).secrets.list(project)
        ]
    }


@router.put("/projects/{project}/secrets/{name}")
@router.post("/projects/{project}/secrets/{name}")
async def secrets_set(request: Request, project: str, name: str) -> Response:
    """Set a secret from the body's ``value``."""
    require(request, Role.MAINTAINER, project)
    data = await read_input(request)
    value = data.get("value")
    if not isinstance(value, str):
        raise ApiError(400, "invalid", "give the secret as a string field 'value'")
    state = server(request)
    await call(
        request,
        "secret.set",
        f"{project}/{name}",
        lambda: state.secrets.set(project, name, value, actor=actor(request)),
    )
    return done(request, data, {"name": name})


@router.delete("/projects/{project}/secrets/{name}")
async def secrets_rm(request: Request, project: str, name: str) -> Response:
    """Delete a secret."""
    require(request, Role.MAINTAINER, project)
    data = await read_input(request)
    state = server(request)
    await call(request, "secret.rm", f"{project}/{name}", lambda: state.secrets.remove(project, name))
    return done(request, data, {"name": name, "removed": True})


@router.get("/tokens")
def tokens(request: Request) -> dict[str, Any]:
    """API tokens (never their values)."""
    require(request, Role.ADMIN)
    return {
        "tokens": [
            {
                "id": t.id,
                "name": t.name,
                "role": t.role,
                "created_at": t.created_at,
                "created_by": t.created_by,
                "last_used_at": t.last_used_at,
                "revoked_at": t.revoked_at,
            }
            for t in server(request).auth.list_tokens()
        ]
    }


@router.post("/tokens", status_code=201)
async def token_create(request: Request) -> Response:
    """Create a token (``name``, ``role``): its value is in this answer only."""
    require(request, Role.ADMIN)
    data = await read_input(request)
    name, role = _text(data, "name") or "", Role.parse(_text(data, "role") or "viewer")
    state = server(request)
    value, info = await call(
        request,
        "token.create",
        f"{name} ({role.label})",
        lambda: state.auth.create_token(name, role, created_by=actor(request)),
    )
    return done(request, data, {"id": info.id, "name": info.name, "role": info.role, "token": value}, 201)


@router.delete("/tokens/{token_id}")
async def token_revoke(request: Request, token_id: str) -> Response:
    """Revoke a token (by id or name)."""
    require(request, Role.ADMIN)
    data = await read_input(request)
    state = server(request)
    await call(request, "token.revoke", token_id, lambda: state.auth.revoke_token(token_id))
    return done(request, data, {"id": token_id, "revoked": True})


@router.get("/audit")
def audit(request: Request, limit: int = 100, cursor: int | None = None) -> dict[str, Any]:
    """The audit log, newest first; ``next`` is the cursor of the following page."""
    require(request, Role.ADMIN)
    limit = max(1, min(limit, 500))
    rows = server(request).audit.entries(before=cursor, limit=limit)
    return {
        "entries": [
            {
                "id": e.id,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "object": e.object,
                "address": e.address,
                "result": e.result,
                "detail": e.detail,
            }
            for e in rows
        ],
        "next": rows[-1].id if len(rows) == limit else None,
    }
