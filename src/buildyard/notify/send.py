"""Senders: deliver one outbox message over HTTP or SMTP; any failure is a ``SendError`` to retry.

Secrets (HMAC key, Slack URL, API token, SMTP password) are resolved here, at send time, through the
``secrets`` function the worker is given; they are never stored with the message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import urllib.parse
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import httpx

from buildyard.errors import BuildyardError
from buildyard.notify.outbox import OutboxEntry

Secrets = Callable[[str], str | None]
DEFAULT_TIMEOUT = 10.0
API = {"github": "https://api.github.com", "gitlab": "https://gitlab.com/api/v4"}


class SendError(BuildyardError):
    """A delivery attempt failed (the message says why); the outbox retries it."""


def _secret(secrets: Secrets, name: str | None, what: str) -> str:
    value = secrets(name) if name else None
    if not value:
        raise SendError(f"secret {name!r} ({what}) is not set")
    return value


def _post(
    url: str, *, body: bytes, headers: dict[str, str], timeout: float, client: httpx.Client | None
) -> None:
    try:
        if client is None:
            response = httpx.post(url, content=body, headers=headers, timeout=timeout, follow_redirects=False)
        else:  # a shared client: no TLS context built per message (~45 ms of CPU each)
            response = client.post(url, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise SendError(f"POST {urllib.parse.urlsplit(url).netloc}: {type(exc).__name__}: {exc}") from None
    if not 200 <= response.status_code < 300:
        raise SendError(f"POST {urllib.parse.urlsplit(url).netloc}: HTTP {response.status_code}")


def send(
    entry: OutboxEntry,
    secrets: Secrets,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    client: httpx.Client | None = None,
) -> None:
    """Deliver ``entry`` (over ``client`` when given); raise ``SendError`` when it did not arrive."""
    channel, payload = entry.channel, entry.payload
    if entry.kind == "webhook":
        body = json.dumps(payload, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "buildyard"}
        if entry.dedup_key:  # delivery is at least once: a receiver drops a repeat by this key
            headers["X-Buildyard-Delivery"] = entry.dedup_key
        if channel.get("secret"):
            key = _secret(secrets, channel["secret"], "webhook signing key").encode()
            headers["X-Buildyard-Signature-256"] = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        _post(channel["url"], body=body, headers=headers, timeout=timeout, client=client)
    elif entry.kind == "slack":
        url = _secret(secrets, channel.get("url_secret"), "Slack webhook URL")
        headers = {"Content-Type": "application/json"}
        _post(url, body=json.dumps(payload).encode(), headers=headers, timeout=timeout, client=client)
    elif entry.kind == "email":
        _send_email(channel, payload, secrets, timeout)
    elif entry.kind == "commit_status":
        _send_status(channel, payload, secrets, timeout, client)
    else:
        raise SendError(f"unknown channel kind {entry.kind!r}")


def _send_status(
    channel: dict[str, Any],
    payload: dict[str, Any],
    secrets: Secrets,
    timeout: float,
    client: httpx.Client | None,
) -> None:
    provider = channel["provider"]
    token = _secret(secrets, channel.get("token_secret"), f"{provider} token")
    api = (channel.get("api") or API[provider]).rstrip("/")
    sha = urllib.parse.quote(payload["sha"], safe="")
    if not payload["sha"]:
        raise SendError("the run has no commit sha: no status to set")
    if provider == "github":
        url = f"{api}/repos/{channel['repository']}/statuses/{sha}"
        body = {k: payload[k] for k in ("state", "target_url", "description")}
        body["context"] = channel.get("context") or "buildyard"
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
    else:
        project = urllib.parse.quote(str(channel["repository"]), safe="")
        url = f"{api}/projects/{project}/statuses/{sha}"
        body = {k: payload[k] for k in ("state", "target_url", "description")}
        body["name"] = channel.get("context") or "buildyard"
        headers = {"PRIVATE-TOKEN": token}
    if not body.get("target_url"):
        body.pop("target_url", None)
    headers["Content-Type"] = "application/json"
    _post(url, body=json.dumps(body).encode(), headers=headers, timeout=timeout, client=client)


def _send_email(channel: dict[str, Any], payload: dict[str, Any], secrets: Secrets, timeout: float) -> None:
    message = EmailMessage()
    message["From"] = payload["from"]
    message["To"] = ", ".join(payload["to"])
    message["Subject"] = payload["subject"].replace("\r", " ").replace("\n", " ")
    message.set_content(payload["body"])
    try:
        with smtplib.SMTP(channel["host"], int(channel["port"]), timeout=timeout) as smtp:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if channel.get("username"):
                password = _secret(secrets, channel.get("password_secret"), "SMTP password")
                smtp.login(channel["username"], password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise SendError(f"SMTP {channel['host']}:{channel['port']}: {type(exc).__name__}: {exc}") from None
