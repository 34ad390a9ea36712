"""Notification messages per channel: what is queued in the outbox (masked, without secret values)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from buildyard.model import NotifyWhen, RunStatus
from buildyard.notify.decide import RunSummary, reasons
from buildyard.spec.models import NotifySpec

Mask = Callable[[str], str]
#: Longest text field of a message (job names, URLs…), after masking.
MAX_TEXT_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Message:
    """One message to send: the channel ``kind``, its settings (secret *names*), the masked payload."""

    kind: str
    channel: dict[str, Any]
    payload: dict[str, Any]
    dedup_key: str


def _masked(value: Any, mask: Mask) -> Any:
    if isinstance(value, str):
        return mask(value)[:MAX_TEXT_CHARS]
    if isinstance(value, list | tuple):
        return [_masked(v, mask) for v in value]
    if isinstance(value, dict):
        return {k: _masked(v, mask) for k, v in value.items()}
    return value


def _title(run: RunSummary, when: NotifyWhen) -> str:
    where = f"tag {run.tag}" if run.tag else (run.branch or "no branch")
    sha = f" ({run.sha[:8]})" if run.sha else ""
    if when is NotifyWhen.APPROVAL_NEEDED:
        return f"{run.pipeline} #{run.number} waits for approval of {run.waiting_for} on {where}{sha}"
    word = "fixed" if when is NotifyWhen.FIXED else str(run.status)
    text = f"{run.pipeline} #{run.number} {word} on {where}{sha}"
    if run.failed_jobs:
        shown = ", ".join(run.failed_jobs[:10])
        text += f": failed {shown}" + (
            f" and {len(run.failed_jobs) - 10} more" if len(run.failed_jobs) > 10 else ""
        )
    return text


def _state(run: RunSummary, provider: str) -> str:
    if run.waiting_for or run.status is RunStatus.RUNNING:
        return "pending" if provider == "github" else "running"
    if run.status is RunStatus.SUCCESS:
        return "success"
    if run.status is RunStatus.CANCELLED:
        return "error" if provider == "github" else "canceled"
    return "failure" if provider == "github" else "failed"


def build(spec: NotifySpec, index: int, run: RunSummary, when: NotifyWhen, mask: Mask) -> Message:
    """The message ``spec`` (the ``index``-th of ``notify:``) sends for ``run``."""
    title = _title(run, when)
    summary = {
        "pipeline": run.pipeline,
        "run": {"id": run.run_id, "number": run.number, "url": run.url},
        "status": "waiting" if run.waiting_for else str(run.status),
        "reason": when.value,
        "branch": run.branch,
        "tag": run.tag,
        "sha": run.sha,
        "failed_jobs": list(run.failed_jobs),
        "waiting_for": run.waiting_for,
        "title": title,
    }
    kind: str
    channel: dict[str, Any]
    payload: dict[str, Any]
    if spec.webhook is not None:
        kind, channel, payload = "webhook", {"url": spec.webhook.url, "secret": spec.webhook.secret}, summary
    elif spec.slack is not None:
        text = f"{title} <{run.url}|open>" if run.url else title
        kind, channel, payload = "slack", {"url_secret": spec.slack.url_secret}, {"text": text}
    elif spec.email is not None:
        e = spec.email
        kind = "email"
        channel = {
            "host": e.host,
            "port": e.port,
            "username": e.username,
            "password_secret": e.password_secret,
        }
        body = "\n".join([title, "", *(f"{k}: {v}" for k, v in summary.items() if k not in ("title", "run"))])
        if run.url:
            body += f"\n\n{run.url}"
        payload = {"from": e.sender, "to": list(e.to), "subject": f"[buildyard] {title}", "body": body + "\n"}
    else:
        c = spec.commit_status
        if c is None:  # pragma: no cover - the loader guarantees one channel
            raise ValueError("a notification without a channel")
        kind = "commit_status"
        channel = {
            "provider": c.provider,
            "repository": c.repository,
            "token_secret": c.token_secret,
            "api": c.api,
            "context": c.context,
        }
        payload = {
            "sha": run.sha,
            "state": _state(run, c.provider),
            "target_url": run.url,
            "description": title[:140],
        }
    key = hashlib.sha256(f"{run.run_id}\0{index}\0{when.value}\0{run.waiting_for}".encode()).hexdigest()
    return Message(kind, channel, _masked(payload, mask), key)


def messages_for(specs: list[NotifySpec], run: RunSummary, mask: Mask) -> list[Message]:
    """Every message ``notify:`` sends for ``run`` (in declaration order)."""
    out: list[Message] = []
    for index, spec in enumerate(specs):
        when = reasons(spec, run)
        if when is not None:
            out.append(build(spec, index, run, when, mask))
    return out
