"""Webhook deliveries shaped like GitHub's and GitLab's documented examples, parsed into one event."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from buildyard.model import Event
from buildyard.triggers.webhooks import (
    MAX_BODY_BYTES,
    BadSignature,
    MalformedPayload,
    PayloadTooLarge,
    Source,
    Verdict,
    loggable_headers,
    parse_delivery,
    verify_signature,
)

PAYLOADS = Path(__file__).parent / "payloads"
SECRET = b"It's a Secret to Everybody"


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return data


def github(event: str, body: bytes | dict[str, Any], *, secret: bytes = SECRET, delivery: str = "d-1") -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    signature = "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": signature}
    return parse_delivery(Source.GITHUB, headers, raw, SECRET)


def gitlab(event: str, body: dict[str, Any], *, token: str = SECRET.decode()) -> Any:
    headers = {"X-Gitlab-Event": event, "X-Gitlab-Token": token, "X-Gitlab-Event-UUID": "u-1"}
    return parse_delivery(Source.GITLAB, headers, json.dumps(body).encode(), SECRET)


def test_githubs_documented_signature_example() -> None:
    # https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    verify_signature(SECRET, b"Hello, World!", expected)
    with pytest.raises(BadSignature):
        verify_signature(SECRET, b"Hello, World?", expected)
    with pytest.raises(BadSignature, match="not signed"):
        verify_signature(SECRET, b"Hello, World!", None)
    with pytest.raises(BadSignature, match="no webhook secret"):
        verify_signature(b"", b"Hello, World!", expected)


def test_github_push() -> None:
    parsed = github("push", payload("github_push.json"))
    assert parsed.verdict is Verdict.QUEUED
    event = parsed.event
    assert (event.event, event.branch, event.tag) == (Event.PUSH, "main", "")
    assert event.sha == "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    assert event.changed_paths == ("docs/index.md", "README.md", "src/parser.py", "src/old.py")
    assert event.repository == "Codertocat/Hello-World"
    assert event.repository_url == "https://github.com/Codertocat/Hello-World.git"
    assert event.message == "Fix the parser"
    assert event.delivery_id == "d-1"


def test_github_push_of_a_tag_a_new_branch_a_deletion_and_skip_ci() -> None:
    data = payload("github_push.json")
    tag = github("push", {**data, "ref": "refs/tags/v1.2.0"}).event
    assert (tag.event, tag.tag, tag.changed_paths) == (Event.TAG, "v1.2.0", None)
    new_branch = github("push", {**data, "before": "0" * 40}).event
    assert new_branch.changed_paths is None  # unknown: path filters do not hold it back
    truncated = github("push", {**data, "size": 30}).event
    assert truncated.changed_paths is None
    assert github("push", {**data, "deleted": True}).verdict is Verdict.IGNORED
    skip = github("push", {**data, "head_commit": {**data["head_commit"], "message": "docs [skip ci]"}})
    assert skip.verdict is Verdict.SKIPPED and skip.event is not None
    assert github("push", {**data, "head_commit": {"message": "x [CI SKIP]"}}).verdict is Verdict.SKIPPED


def test_github_pull_request_actions() -> None:
    data = payload("github_pull_request.json")
    for action in ("opened", "synchronize", "reopened"):
        parsed = github("pull_request", {**data, "action": action})
        assert parsed.verdict is Verdict.QUEUED
        event = parsed.event
        assert (event.event, event.branch, event.base_branch) == (Event.PULL_REQUEST, "changes", "main")
        assert event.sha == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
        assert event.action == action
    closed = github("pull_request", {**data, "action": "closed"})
    assert closed.verdict is Verdict.IGNORED
    assert closed.reason == "pull_request action 'closed' does not run the pipeline"


def test_github_create_tag_ping_and_unknown_events() -> None:
    tag = github("create", payload("github_create_tag.json"))
    assert (tag.verdict, tag.event.event, tag.event.tag) == (Verdict.QUEUED, Event.TAG, "simple-tag")
    branch = github("create", {**payload("github_create_tag.json"), "ref_type": "branch"})
    assert branch.verdict is Verdict.IGNORED
    assert github("ping", payload("github_ping.json")).verdict is Verdict.PING
    issues = github("issues", {"action": "opened"})
    assert (issues.verdict, issues.reason) == (
        Verdict.IGNORED,
        "GitHub event 'issues' does not run the pipeline",
    )


def test_gitlab_push_tag_push_and_merge_requests() -> None:
    data = payload("gitlab_push.json")
    skipped = gitlab("Push Hook", data)  # the documented example's head commit says [ci skip]
    assert skipped.verdict is Verdict.SKIPPED
    data["commits"][1]["message"] = "fixed readme"
    parsed = gitlab("Push Hook", data)
    assert parsed.verdict is Verdict.QUEUED
    event = parsed.event
    assert (event.event, event.branch, event.sha) == (
        Event.PUSH,
        "master",
        "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
    )
    assert event.changed_paths == ("CHANGELOG", "app/controller/application.rb")
    assert (event.repository, event.repository_url) == (
        "mike/diaspora",
        "http://example.com/mike/diaspora.git",
    )
    assert event.delivery_id == "u-1"
    tag = gitlab("Tag Push Hook", payload("gitlab_tag_push.json")).event
    assert (tag.event, tag.tag, tag.sha) == (Event.TAG, "v1.0.0", "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7")
    mr = gitlab("Merge Request Hook", payload("gitlab_merge_request.json")).event
    assert (mr.event, mr.branch, mr.base_branch, mr.action) == (
        Event.PULL_REQUEST,
        "ms-viewport",
        "master",
        "open",
    )
    update = payload("gitlab_merge_request.json")
    update["object_attributes"]["action"] = "update"
    assert gitlab("Merge Request Hook", update).verdict is Verdict.IGNORED  # no new commits (no oldrev)
    update["object_attributes"]["oldrev"] = "95790bf891e76fee5e1747ab589903a6a1f80f22"
    assert gitlab("Merge Request Hook", update).verdict is Verdict.QUEUED
    update["object_attributes"]["action"] = "merge"
    assert gitlab("Merge Request Hook", update).verdict is Verdict.IGNORED


def test_gitlab_token_is_required_and_compared() -> None:
    with pytest.raises(BadSignature) as info:
        gitlab("Push Hook", payload("gitlab_push.json"), token="wrong")
    assert info.value.http_status == 401
    headers = {"X-Gitlab-Event": "Push Hook"}
    with pytest.raises(BadSignature, match="no X-Gitlab-Token"):
        parse_delivery(Source.GITLAB, headers, b"{}", SECRET)


def test_generic_body() -> None:
    body = {
        "event": "push",
        "repository": "https://git.example.com/shop.git",
        "ref": "refs/heads/main",
        "sha": "abc123",
        "changed_paths": ["src/a.py"],
        "delivery_id": "g-1",
    }
    raw = json.dumps(body).encode()
    headers = {"X-Buildyard-Signature-256": "sha256=" + hmac.new(SECRET, raw, hashlib.sha256).hexdigest()}
    event = parse_delivery(Source.GENERIC, headers, raw, SECRET).event
    assert (event.event, event.branch, event.sha, event.changed_paths) == (
        Event.PUSH,
        "main",
        "abc123",
        ("src/a.py",),
    )
    assert (event.repository_url, event.delivery_id) == ("https://git.example.com/shop.git", "g-1")
    with pytest.raises(BadSignature):
        parse_delivery(Source.GENERIC, {"X-Buildyard-Signature-256": "sha256=00"}, raw, SECRET)
    bad = json.dumps({**body, "sha": 12}).encode()
    signed = {"X-Buildyard-Signature-256": "sha256=" + hmac.new(SECRET, bad, hashlib.sha256).hexdigest()}
    with pytest.raises(MalformedPayload, match="sha: expected a string, got int"):
        parse_delivery(Source.GENERIC, signed, bad, SECRET)


def test_bad_signature_is_checked_before_the_body_is_parsed() -> None:
    with pytest.raises(BadSignature):
        github("push", b"not json", secret=b"other secret")
    with pytest.raises(MalformedPayload) as info:
        github("push", b"not json")
    assert info.value.http_status == 400
    with pytest.raises(MalformedPayload, match="JSON object"):
        github("push", b"[1, 2]")
    with pytest.raises(MalformedPayload, match="nested too deeply"):
        github("push", b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(MalformedPayload, match="ref: expected a string"):
        github("push", {**payload("github_push.json"), "ref": ["x"]})


def test_size_limit() -> None:
    headers = {"X-GitHub-Event": "push", "Content-Length": str(MAX_BODY_BYTES + 1)}
    with pytest.raises(PayloadTooLarge) as info:
        parse_delivery(Source.GITHUB, headers, b"{}", SECRET)  # refused from the header, before the MAC
    assert info.value.http_status == 413
    with pytest.raises(PayloadTooLarge):
        github("push", b" " * (MAX_BODY_BYTES + 1))


def test_logged_headers_have_no_secrets_and_stay_one_line() -> None:
    logged = loggable_headers(
        {
            "X-Gitlab-Token": "s3cret",
            "Authorization": "Bearer x",
            "X-Evil": "a\nb\x1b[2J",
            "X-GitHub-Event": "push",
        }
    )
    assert logged == {"X-Evil": "a\\nb\\x1b[2J", "X-GitHub-Event": "push"}
