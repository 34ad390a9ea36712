"""A small client of a running buildyard server's API (``--server URL``, token in ``BUILDYARD_TOKEN``).

Server errors become one-line ``UserError``s with the server's stable code.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
import urllib.parse
from typing import Any

import httpx

from buildyard.errors import NotFoundError, UserError

TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class ServerError(UserError):
    """The server refused a request (its code and message) or could not be reached."""


def quote(part: str) -> str:
    """A path segment (job ids hold '[', ']', '=', ',')."""
    return urllib.parse.quote(part, safe="")


class Client:
    """Requests to ``base``'s ``/api/v1``."""

    def __init__(self, base: str, token: str | None = None) -> None:
        if not base.startswith(("http://", "https://")):
            raise ServerError(f"--server expects an http(s):// URL, got '{base:.80}'")
        self.base = base.rstrip("/")
        token = token if token is not None else os.environ.get("BUILDYARD_TOKEN", "")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(headers=headers, timeout=TIMEOUT)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; a one-line error for a refusal or an unreachable server."""
        url = f"{self.base}/api/v1{path}"
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach {self.base}: {exc}") from None
        if response.status_code >= 400:
            try:
                body = response.json()
                code, message = str(body.get("code")), str(body.get("message"))
            except ValueError:
                code, message = str(response.status_code), response.text[:200]
            if code == "unauthenticated":
                message += " (set BUILDYARD_TOKEN)"
            error = NotFoundError if code == "not_found" else ServerError
            raise error(f"server: {code}: {message}")
        return response

    def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` as JSON."""
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None}).json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST a JSON body; the JSON answer."""
        return self.request(
            "POST", path, json={k: v for k, v in (body or {}).items() if v is not None}
        ).json()

    def only_project(self) -> str:
        """The served project, when there is exactly one (else ask for ``--project``)."""
        names = [p["name"] for p in self.get("/projects")["projects"]]
        if len(names) != 1:
            raise ServerError(
                f"the server has {len(names)} projects ({', '.join(names[:10])}): give --project"
            )
        return str(names[0])


#: Seconds between two looks at a followed log.
FOLLOW_POLL = 0.3


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _dur(seconds: float | None) -> str:
    from buildyard.spec.durations import format_duration  # noqa: PLC0415

    return format_duration(seconds) if seconds is not None else "-"


def remote_history(url: str, project: str | None, limit: int, as_json: bool) -> None:
    """``buildyard history --server URL``."""
    from buildyard.cli._common import print_json  # noqa: PLC0415
    from buildyard.termtext import safe_text  # noqa: PLC0415

    with Client(url) as client:
        name = project or client.only_project()
        runs = client.get(f"/projects/{quote(name)}/runs", limit=min(limit, 200))["runs"]
    if as_json:
        print_json(runs)
        return
    if not runs:
        print(f"no runs of {name} recorded yet (start one with 'buildyard trigger')")
        return
    print(
        f"{'#':>5}  {'status':<9} {'pipeline':<16} {'event':<12} {'branch':<16} {'started':<19} {'took':>8}"
    )
    for r in runs:
        where = (r["branch"] or r["tag"])[:16]
        print(
            safe_text(
                f"{r['number']:>5}  {r['status']:<9} {r['pipeline'][:16]:<16} {r['event']:<12} {where:<16} "
                f"{_when(r['created_at']):<19} {_dur(r['duration_s']):>8}"
            )
        )


def remote_show(url: str, project: str | None, run: str | None, as_json: bool) -> None:
    """``buildyard show --server URL``."""
    from buildyard.cli._common import print_json  # noqa: PLC0415
    from buildyard.termtext import safe_text  # noqa: PLC0415

    with Client(url) as client:
        name = project or client.only_project()
        record = client.get(f"/projects/{quote(name)}/runs/{quote(run or 'last')}")
    if as_json:
        print_json(record)
        return
    lines = [
        f"run #{record['number']} {record['status']}  pipeline={record['pipeline']} event={record['event']} "
        f"branch={record['branch'] or '-'} tag={record['tag'] or '-'} sha={record['sha'][:12] or '-'}",
        f"id {record['id']}  started {_when(record['created_at'])}  took {_dur(record['duration_s'])}  "
        f"queued {_dur(record['queue_s'])}",
        f"{'job':<32} {'status':<10} {'try':>3} {'exit':>4} {'took':>8}  note",
    ]
    for j in record["jobs"]:
        code = "-" if j["exit_code"] is None else str(j["exit_code"])
        note = j["message"] or (j["skip_reason"] or "")
        lines.append(
            f"{j['id'][:32]:<32} {j['status']:<10} {j['attempts']:>3} {code:>4} "
            f"{_dur(j['duration_s']):>8}  {note}"
        )
    for line in lines:
        print(safe_text(line))


def remote_logs(
    url: str, project: str | None, run: str | None, job: str | None, *, follow: bool, raw: bool
) -> None:
    """``buildyard logs --server URL [--follow]``: the logs of a run's jobs, following a running one."""
    from buildyard.termtext import OutputFilter, safe_text  # noqa: PLC0415

    with Client(url) as client:
        name = project or client.only_project()
        record = client.get(f"/projects/{quote(name)}/runs/{quote(run or 'last')}")
        jobs = record["jobs"]
        if job is not None:
            jobs = [j for j in jobs if j["id"] == job] or [j for j in jobs if j["job"] == job]
            if not jobs:
                raise NotFoundError(f"run #{record['number']} has no job '{job}'")
        for j in jobs:
            if len(jobs) > 1:
                print(f"──── {safe_text(j['id'])} ({j['status']})")
            shown = OutputFilter(raw=raw)
            path = f"/projects/{quote(name)}/runs/{record['id']}/jobs/{quote(j['id'])}/log"
            offset = 0
            while True:
                try:
                    response = client.request("GET", path, params={"offset": offset})
                except ServerError as exc:
                    if "no_log" not in str(exc) or not follow:
                        raise
                    time.sleep(FOLLOW_POLL)  # not started yet
                    continue
                if response.content:
                    sys.stdout.write(shown.feed(response.content))
                    sys.stdout.flush()
                offset = int(response.headers.get("x-log-next", offset + len(response.content)))
                final = response.headers.get("x-log-final") == "true"
                if not response.content and (final or not follow):
                    break
                if not response.content:
                    time.sleep(FOLLOW_POLL)
            sys.stdout.write(shown.flush())
            sys.stdout.flush()


def remote_decide(url: str, project: str | None, run: str, job: str, decision: str, comment: str) -> None:
    """``buildyard approve|reject --server URL``."""
    with Client(url) as client:
        name = project or client.only_project()
        answer = client.post(
            f"/projects/{quote(name)}/runs/{quote(run)}/jobs/{quote(job)}/{decision}", {"comment": comment}
        )
    done = "approved" if decision == "approve" else "rejected"
    print(f"{done} {answer['job']} of run {run} on {url}")
