"""A small client of a running buildyard server's API (``--server URL``, token in ``BUILDYARD_TOKEN``).

Server errors become one-line ``UserError``s with the server's stable code.
"""

from __future__ import annotations

import os
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
