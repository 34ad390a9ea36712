"""Webhook deliveries as pure functions: authenticate, bound, parse into one ``TriggerEvent``.

Everything in a delivery is untrusted: the body is bounded (``MAX_BODY_BYTES``, GitHub's own cap),
parsed as JSON into plain values and read field by field with type checks (a wrong type is a
``MalformedPayload``, never a traceback), strings are capped, and long path lists become "unknown".

Sources:

- **GitHub** (``X-GitHub-Event``, ``X-GitHub-Delivery``, ``X-Hub-Signature-256: sha256=HEX``, HMAC-SHA256
  of the raw body): ``push`` (branches; tags too), ``pull_request`` (opened, synchronize, reopened),
  ``create`` (tags), ``ping``.
- **GitLab** (``X-Gitlab-Event``, ``X-Gitlab-Token`` compared in constant time, ``X-Gitlab-Event-UUID``
  or ``Idempotency-Key``): ``Push Hook``, ``Tag Push Hook``, ``Merge Request Hook`` (open, reopen,
  update with new commits).
- **Generic** (``X-Buildyard-Signature-256: sha256=HEX``, HMAC-SHA256 of the raw body; optional
  ``X-Buildyard-Delivery``): a JSON object::

      {"event": "push" | "pull_request" | "tag",      required
       "repository": "https://git.example.com/shop.git" or "group/shop",   required
       "ref": "refs/heads/main" | "refs/tags/v1.2",    required (a bare name is a branch)
       "sha": "0123abcd…",                             required
       "changed_paths": ["src/app.py", …],             optional (absent: unknown)
       "base_branch": "main",                          optional (pull_request)
       "message": "head commit message",               optional
       "delivery_id": "…"}                             optional (else the header)

A head commit message containing ``[skip ci]`` or ``[ci skip]`` makes the delivery ``skipped``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from buildyard.errors import UserError
from buildyard.model import Event
from buildyard.termtext import safe_text
from buildyard.triggers.events import TriggerEvent

#: Largest delivery body accepted (GitHub caps its payloads at 25 MB).
MAX_BODY_BYTES = 25 * 1024 * 1024
#: Most changed paths kept from one delivery; more make the changed paths "unknown".
MAX_CHANGED_PATHS = 10_000
#: Longest name (branch, tag, repository, sha, path) kept; longer is a malformed delivery.
MAX_NAME_CHARS = 1024
#: Longest commit message kept (the rest is cut).
MAX_MESSAGE_CHARS = 16 * 1024
SKIP_MARKERS = ("[skip ci]", "[ci skip]")
_ZERO_SHA = "0" * 40

#: Headers never kept in the delivery log (they carry secrets).
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-gitlab-token", "x-api-key", "x-auth-token"}
)
MAX_LOGGED_HEADERS = 50
MAX_HEADER_CHARS = 500


class DeliveryError(UserError):
    """A delivery the server refuses; ``http_status`` is the answer the server gives."""

    http_status: ClassVar[int] = 400


class PayloadTooLarge(DeliveryError):
    """The body is larger than the limit (413)."""

    http_status: ClassVar[int] = 413


class MalformedPayload(DeliveryError):
    """The body is not the JSON object expected, or a field has the wrong type (400)."""

    http_status: ClassVar[int] = 400


class BadSignature(DeliveryError):
    """The signature or token is missing or wrong (401): nothing is queued."""

    http_status: ClassVar[int] = 401


class Source(StrEnum):
    """Who sent a delivery."""

    GITHUB = "github"
    GITLAB = "gitlab"
    GENERIC = "generic"


class Verdict(StrEnum):
    """What became of a delivery (the delivery log's ``verdict``)."""

    QUEUED = "queued"  # a run was queued
    DUPLICATE = "duplicate"  # the same delivery was seen before: nothing queued (200, duplicate: true)
    IGNORED = "ignored"  # an event buildyard does not run for (202, with the reason)
    SKIPPED = "skipped"  # [skip ci] in the head commit message
    PING = "ping"  # GitHub's hello
    REJECTED = "rejected"  # bad signature, too large, malformed (401/413/400)


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed delivery: an ``event`` to run for, or ``None`` with the verdict and reason why not."""

    verdict: Verdict
    reason: str
    event: TriggerEvent | None = None
    kind: str = ""  # the source's own event name (push, Merge Request Hook, …)
    delivery_id: str = ""


# --- authentication -------------------------------------------------------------------------------


def _hmac_hex(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes) -> str:
    """The ``sha256=HEX`` signature header value of ``body`` (GitHub's and the generic hook's)."""
    return "sha256=" + _hmac_hex(secret, body)


def verify_signature(secret: bytes, body: bytes, header: str | None) -> None:
    """Check a ``sha256=HEX`` HMAC-SHA256 signature in constant time; raise ``BadSignature``."""
    if not secret:
        raise BadSignature("no webhook secret is configured for this project: deliveries are refused")
    if not header:
        raise BadSignature("the delivery is not signed (no signature header)")
    given = header.strip().encode("ascii", "replace")
    if not hmac.compare_digest(given, sign(secret, body).encode()):
        raise BadSignature("the delivery's signature does not match the project's webhook secret")


def verify_token(secret: bytes, header: str | None) -> None:
    """Check GitLab's ``X-Gitlab-Token`` against the secret in constant time; raise ``BadSignature``."""
    if not secret:
        raise BadSignature("no webhook secret is configured for this project: deliveries are refused")
    if not header:
        raise BadSignature("the delivery has no X-Gitlab-Token")
    if not hmac.compare_digest(header.encode("utf-8", "replace"), secret):
        raise BadSignature("the delivery's X-Gitlab-Token does not match the project's webhook secret")


# --- bounds and plain values ----------------------------------------------------------------------


def check_size(content_length: str | None, size: int | None = None, *, limit: int = MAX_BODY_BYTES) -> None:
    """Refuse a body over ``limit`` from its Content-Length (before reading) or its read ``size``."""
    declared: int | None = None
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise MalformedPayload(f"bad Content-Length {safe_text(content_length[:40])!r}") from None
    for value in (declared, size):
        if value is not None and value > limit:
            raise PayloadTooLarge(f"the delivery is {value} bytes, more than the limit of {limit}")


def parse_json(body: bytes, *, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The body as a JSON object; ``PayloadTooLarge`` or ``MalformedPayload`` otherwise."""
    check_size(None, len(body), limit=limit)
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedPayload(f"the body is not JSON ({safe_text(str(exc))[:200]})") from None
    except RecursionError:
        raise MalformedPayload("the body's JSON is nested too deeply") from None
    if not isinstance(data, dict):
        raise MalformedPayload("the body must be a JSON object")
    return data


def _get(data: Any, *path: str) -> Any:
    """The value at ``path`` (``None`` when a key is missing); a non-object on the way is malformed."""
    for i, key in enumerate(path):
        if data is None:
            return None
        if not isinstance(data, dict):
            where = ".".join(path[:i]) or "the body"
            raise MalformedPayload(f"{where}: expected an object, got {type(data).__name__}")
        data = data.get(key)
    return data


def _str(data: Any, *path: str, required: bool = False, limit: int = MAX_NAME_CHARS) -> str:
    value = _get(data, *path)
    where = ".".join(path)
    if value is None:
        if required:
            raise MalformedPayload(f"{where}: missing")
        return ""
    if not isinstance(value, str):
        raise MalformedPayload(f"{where}: expected a string, got {type(value).__name__}")
    if len(value) > limit:
        raise MalformedPayload(f"{where}: longer than {limit} characters")
    return value


def _message(data: Any, *path: str) -> str:
    value = _get(data, *path)
    return value[:MAX_MESSAGE_CHARS] if isinstance(value, str) else ""


def _ref(ref: str) -> tuple[str, str]:
    """``refs/heads/B`` → (B, ""); ``refs/tags/T`` → ("", T); a bare name is a branch."""
    if ref.startswith("refs/tags/"):
        return "", ref.removeprefix("refs/tags/")
    return ref.removeprefix("refs/heads/"), ""


def _commit_paths(commits: Any, *, complete: bool) -> tuple[str, ...] | None:
    """Changed paths of push commits (added, modified, removed); ``None`` when they may be incomplete."""
    if not complete or not isinstance(commits, list):
        return None
    paths: dict[str, None] = {}
    for commit in commits:
        if not isinstance(commit, dict):
            raise MalformedPayload("commits: expected objects")
        for key in ("added", "modified", "removed"):
            items = commit.get(key) or []
            if not isinstance(items, list) or not all(isinstance(p, str) for p in items):
                raise MalformedPayload(f"commits[].{key}: expected a list of paths")
            for p in items:
                if len(p) > MAX_NAME_CHARS:
                    raise MalformedPayload(f"commits[].{key}: a path longer than {MAX_NAME_CHARS} characters")
                paths[p] = None
                if len(paths) > MAX_CHANGED_PATHS:
                    return None
    return tuple(paths)


def skip_requested(message: str) -> bool:
    """Whether a commit message asks not to run CI (``[skip ci]`` / ``[ci skip]``, any case)."""
    lowered = message.lower()
    return any(marker in lowered for marker in SKIP_MARKERS)


def _finish(event: TriggerEvent, kind: str, delivery_id: str) -> Parsed:
    if skip_requested(event.message):
        return Parsed(Verdict.SKIPPED, "the head commit message asks to skip CI", event, kind, delivery_id)
    what = f"tag {event.tag}" if event.tag else f"{event.event.value} on {event.branch}"
    return Parsed(
        Verdict.QUEUED, safe_text(f"{kind}: {what} at {event.sha[:12] or '?'}"), event, kind, delivery_id
    )


def _ignored(reason: str, kind: str, delivery_id: str) -> Parsed:
    return Parsed(Verdict.IGNORED, safe_text(reason)[:500], None, kind, delivery_id)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name (frameworks differ in how they case them)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


# --- GitHub ---------------------------------------------------------------------------------------

GITHUB_PR_ACTIONS = frozenset({"opened", "synchronize", "reopened"})


def parse_github(headers: Mapping[str, str], body: bytes, secret: bytes) -> Parsed:
    """Authenticate and parse a GitHub delivery (raises ``DeliveryError`` for 401/413/400)."""
    check_size(_header(headers, "Content-Length"), len(body))
    verify_signature(secret, body, _header(headers, "X-Hub-Signature-256"))
    kind = (_header(headers, "X-GitHub-Event") or "")[:100]
    delivery = (_header(headers, "X-GitHub-Delivery") or "")[:200]
    data = parse_json(body)
    repo_url = _str(data, "repository", "clone_url")
    full_name = _str(data, "repository", "full_name")
    if kind == "ping":
        return Parsed(Verdict.PING, "ping: the hook is set up", None, kind, delivery)
    if kind == "push":
        if _get(data, "deleted") is True:
            return _ignored("push deletes a ref: nothing to run", kind, delivery)
        branch, tag = _ref(_str(data, "ref", required=True))
        before = _str(data, "before")
        commits = _get(data, "commits")
        # GitHub lists at most 2048 commits (and no files for a new branch's history): then unknown
        size = _get(data, "size")
        complete = before not in ("", _ZERO_SHA) and not (
            isinstance(size, int) and isinstance(commits, list) and size > len(commits)
        )
        event = TriggerEvent(
            Event.TAG if tag else Event.PUSH,
            branch=branch,
            tag=tag,
            sha=_str(data, "after", required=True),
            changed_paths=None if tag else _commit_paths(commits, complete=complete),
            repository_url=repo_url,
            repository=full_name,
            message=_message(data, "head_commit", "message"),
            delivery_id=delivery,
            source=Source.GITHUB.value,
        )
        return _finish(event, kind, delivery)
    if kind == "pull_request":
        action = _str(data, "action")
        if action not in GITHUB_PR_ACTIONS:
            return _ignored(f"pull_request action '{action}' does not run the pipeline", kind, delivery)
        event = TriggerEvent(
            Event.PULL_REQUEST,
            branch=_str(data, "pull_request", "head", "ref", required=True),
            base_branch=_str(data, "pull_request", "base", "ref", required=True),
            sha=_str(data, "pull_request", "head", "sha", required=True),
            repository_url=repo_url,
            repository=full_name,
            message=_message(data, "pull_request", "title"),
            delivery_id=delivery,
            action=action,
            source=Source.GITHUB.value,
        )
        return _finish(event, kind, delivery)
    if kind == "create":
        if _str(data, "ref_type") != "tag":
            return _ignored("create of a branch: its pushes run the pipeline", kind, delivery)
        event = TriggerEvent(
            Event.TAG,
            tag=_str(data, "ref", required=True),
            repository_url=repo_url,
            repository=full_name,
            delivery_id=delivery,
            source=Source.GITHUB.value,
        )
        return _finish(event, kind, delivery)
    return _ignored(f"GitHub event '{kind}' does not run the pipeline", kind, delivery)


# --- GitLab ---------------------------------------------------------------------------------------

GITLAB_MR_ACTIONS = frozenset({"open", "reopen", "update"})


def parse_gitlab(headers: Mapping[str, str], body: bytes, secret: bytes) -> Parsed:
    """Authenticate and parse a GitLab delivery (raises ``DeliveryError`` for 401/413/400)."""
    check_size(_header(headers, "Content-Length"), len(body))
    verify_token(secret, _header(headers, "X-Gitlab-Token"))
    kind = (_header(headers, "X-Gitlab-Event") or "")[:100]
    delivery = (_header(headers, "X-Gitlab-Event-UUID") or _header(headers, "Idempotency-Key") or "")[:200]
    data = parse_json(body)
    repo_url = _str(data, "project", "git_http_url") or _str(data, "repository", "git_http_url")
    full_name = _str(data, "project", "path_with_namespace")
    if kind in ("Push Hook", "Tag Push Hook"):
        sha = _str(data, "checkout_sha") or _str(data, "after")
        if not sha or sha == _ZERO_SHA:
            return _ignored(f"{kind} deletes a ref: nothing to run", kind, delivery)
        branch, tag = _ref(_str(data, "ref", required=True))
        commits = _get(data, "commits")
        total = _get(data, "total_commits_count")
        before = _str(data, "before")
        complete = before not in ("", _ZERO_SHA) and not (
            isinstance(total, int) and isinstance(commits, list) and total > len(commits)
        )
        head = (
            next((c for c in commits if isinstance(c, dict) and c.get("id") == sha), None)
            if isinstance(commits, list)
            else None
        )
        event = TriggerEvent(
            Event.TAG if tag else Event.PUSH,
            branch=branch,
            tag=tag,
            sha=sha,
            changed_paths=None if tag else _commit_paths(commits, complete=complete),
            repository_url=repo_url,
            repository=full_name,
            message=_message(head, "message") if head is not None else _message(data, "message"),
            delivery_id=delivery,
            source=Source.GITLAB.value,
        )
        return _finish(event, kind, delivery)
    if kind == "Merge Request Hook":
        attrs = _get(data, "object_attributes")
        action = _str(attrs, "action")
        if action not in GITLAB_MR_ACTIONS:
            return _ignored(f"merge request action '{action}' does not run the pipeline", kind, delivery)
        if action == "update" and _get(attrs, "oldrev") is None:
            return _ignored("merge request update without new commits", kind, delivery)
        event = TriggerEvent(
            Event.PULL_REQUEST,
            branch=_str(attrs, "source_branch", required=True),
            base_branch=_str(attrs, "target_branch", required=True),
            sha=_str(attrs, "last_commit", "id", required=True),
            repository_url=repo_url,
            repository=full_name,
            message=_message(attrs, "last_commit", "message"),
            delivery_id=delivery,
            action=action,
            source=Source.GITLAB.value,
        )
        return _finish(event, kind, delivery)
    return _ignored(f"GitLab event '{kind}' does not run the pipeline", kind, delivery)


# --- generic --------------------------------------------------------------------------------------

_GENERIC_EVENTS = {"push": Event.PUSH, "pull_request": Event.PULL_REQUEST, "tag": Event.TAG}


def parse_generic(headers: Mapping[str, str], body: bytes, secret: bytes) -> Parsed:
    """Authenticate and parse a generic delivery (the body documented in the module docstring)."""
    check_size(_header(headers, "Content-Length"), len(body))
    verify_signature(secret, body, _header(headers, "X-Buildyard-Signature-256"))
    data = parse_json(body)
    name = _str(data, "event", required=True)
    delivery = (_str(data, "delivery_id", limit=200) or _header(headers, "X-Buildyard-Delivery") or "")[:200]
    if name not in _GENERIC_EVENTS:
        return _ignored(f"event '{name}' is not one of push, pull_request, tag", name, delivery)
    branch, tag = _ref(_str(data, "ref", required=True))
    kind = Event.TAG if tag else _GENERIC_EVENTS[name]
    paths = _get(data, "changed_paths")
    changed: tuple[str, ...] | None = None
    if paths is not None:
        if not isinstance(paths, list) or not all(
            isinstance(p, str) and len(p) <= MAX_NAME_CHARS for p in paths
        ):
            raise MalformedPayload("changed_paths: expected a list of paths")
        changed = tuple(paths) if len(paths) <= MAX_CHANGED_PATHS else None
    repository = _str(data, "repository", required=True)
    is_url = "://" in repository or repository.startswith("git@")
    event = TriggerEvent(
        kind,
        branch=branch,
        tag=tag,
        sha=_str(data, "sha", required=True),
        base_branch=_str(data, "base_branch"),
        changed_paths=changed,
        repository_url=repository if is_url else "",
        repository="" if is_url else repository,
        message=_message(data, "message"),
        delivery_id=delivery,
        source=Source.GENERIC.value,
    )
    return _finish(event, name, delivery)


PARSERS = {Source.GITHUB: parse_github, Source.GITLAB: parse_gitlab, Source.GENERIC: parse_generic}


def parse_delivery(source: Source, headers: Mapping[str, str], body: bytes, secret: bytes) -> Parsed:
    """Authenticate and parse a delivery of ``source``; ``DeliveryError`` subclasses carry the status."""
    return PARSERS[source](headers, body, secret)


def loggable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers as kept in the delivery log: without secrets, bounded, control characters escaped."""
    out: dict[str, str] = {}
    for key, value in list(headers.items())[:MAX_LOGGED_HEADERS]:
        if key.lower() in SECRET_HEADERS:
            continue
        out[safe_text(key[:100])] = safe_text(value[:MAX_HEADER_CHARS])
    return out
