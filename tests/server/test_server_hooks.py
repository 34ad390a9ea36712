"""Webhook deliveries through a real ``buildyard serve`` process: a bare repository as the project's
remote, pushes to it, signed GitHub/GitLab/generic payloads shaped like their documentation, and the
runs they queue executed by the server's runners."""

from __future__ import annotations

import copy
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_testutil import Server, wait_for

from buildyard.triggers.webhooks import sign
from by_testutil import git

PAYLOADS = Path(__file__).parents[1] / "triggers" / "payloads"

PIPELINE = """\
name: shop
on:
  push:
    branches: [main]
    paths_ignore: ["docs/**"]
  pull_request:
    branches: [main]
jobs:
  hello:
    script: echo "hello from $BUILDYARD_BRANCH"
"""

FINAL = ("success", "failed", "cancelled", "abandoned", "error", "skipped")


def payload(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text())


@pytest.fixture
def shop(tmp_path: Path, make_project, cli) -> dict[str, Any]:
    """A project pushed to a bare repository (its remote), served from ``server.yml`` with a webhook
    secret, an operator and a maintainer token."""
    work = make_project({"buildyard.yml": PIPELINE, "src/app.py": "print('hi')\n"}, name="work")
    remote = tmp_path / "shop.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(remote))
    git(work, "remote", "add", "origin", str(remote))
    url = f"file://{remote}"
    config = tmp_path / "server.yml"
    config.write_text(f"projects:\n  - name: shop\n    repo: {url}\n    default_branch: main\n")
    secret = cli("secrets", "webhook", "--project", "shop", "--config", config)
    assert secret.code == 0, secret.err
    tokens = {}
    for role in ("viewer", "maintainer"):
        made = cli("token", "create", "--name", role, "--role", role, "--config", config)
        assert made.code == 0, made.err
        tokens[role] = made.out.strip()
    return {
        "work": work,
        "url": url,
        "config": config,
        "secret": secret.out.strip().encode(),
        "tokens": tokens,
    }


def commit(work: Path, path: str, content: str, message: str, branch: str = "main") -> tuple[str, str]:
    """Commit ``path`` on ``branch`` and push it; (before, after) shas."""
    before = git(work, "rev-parse", "HEAD").strip()
    if git(work, "branch", "--show-current").strip() != branch:
        git(work, "checkout", "-q", "-B", branch)
    (work / path).parent.mkdir(parents=True, exist_ok=True)
    (work / path).write_text(content)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", message)
    git(work, "push", "-q", "origin", branch)
    return before, git(work, "rev-parse", "HEAD").strip()


def github_push(
    shop: dict[str, Any], before: str, after: str, changed: list[str], branch: str = "main"
) -> bytes:
    data = payload("github_push.json")
    data["ref"] = f"refs/heads/{branch}"
    data["before"], data["after"] = before, after
    data["repository"]["full_name"] = "acme/shop"
    data["repository"]["clone_url"] = shop["url"]
    commit_ = copy.deepcopy(data["commits"][0])
    commit_.update(id=after, added=[], removed=[], modified=changed, message="change")
    data["commits"] = [commit_]
    data["head_commit"] = commit_
    data["size"] = 1
    return json.dumps(data).encode()


def deliver(
    server: Server,
    secret: bytes,
    body: bytes,
    event: str = "push",
    *,
    delivery: str | None = None,
    path: str = "/hooks/github/shop",
    signature: str | None = None,
) -> httpx.Response:
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": signature if signature is not None else sign(secret, body),
        "User-Agent": "GitHub-Hookshot/abc",
    }
    return httpx.post(server.url + path, content=body, headers=headers, timeout=30)


def entry(server: Server, token: str, entry_id: str) -> dict[str, Any]:
    response = server.client(token).get(f"/api/v1/projects/shop/queue/{entry_id}")
    assert response.status_code == 200, response.text
    return response.json()


def finished(server: Server, token: str, entry_id: str) -> dict[str, Any]:
    return wait_for(
        lambda: (e := entry(server, token, entry_id)) and e["status"] in FINAL and e,
        f"queue entry {entry_id} to finish",
    )


def queued_count(server: Server, token: str) -> int:
    rows = server.client(token).get("/api/v1/projects/shop/deliveries", params={"limit": 500}).json()
    return sum(1 for d in rows["deliveries"] if d["run_id"])


def test_github_push_runs_the_pushed_commit_once_and_bad_deliveries_queue_nothing(shop, serve) -> None:
    server = serve(None, "--config", shop["config"])
    viewer = shop["tokens"]["viewer"]
    before, after = commit(shop["work"], "src/app.py", "print('v2')\n", "v2")
    body = github_push(shop, before, after, ["src/app.py"])
    started = time.monotonic()
    answer = deliver(server, shop["secret"], body, delivery="d-1")
    took = time.monotonic() - started
    assert answer.status_code == 202, answer.text
    data = answer.json()
    assert data["verdict"] == "queued" and data["duplicate"] is False and data["run_id"]
    assert took < 2.0  # the answer does not wait for the fetch or the run
    done = finished(server, viewer, data["run_id"])
    assert done["status"] == "success", done
    assert done["sha"] == after and done["event"] == "push" and done["requested_by"] == "webhook:github"
    run = server.client(viewer).get(f"/api/v1/projects/shop/runs/{done['run_id']}").json()
    assert run["sha"] == after and run["branch"] == "main" and run["trigger"] == "github"
    log = server.client(viewer).get(f"/api/v1/projects/shop/runs/{done['run_id']}/jobs/hello/log").text
    assert "hello from main" in log

    # the same delivery again: 200, duplicate, nothing queued
    again = deliver(server, shop["secret"], body, delivery="d-1")
    assert again.status_code == 200 and again.json()["duplicate"] is True and again.json()["run_id"] is None
    # a bad signature: 401, nothing queued; an unsigned one too
    forged = deliver(server, b"not the secret", body, delivery="d-2")
    assert forged.status_code == 401 and forged.json()["verdict"] == "rejected"
    unsigned = deliver(server, shop["secret"], body, delivery="d-3", signature="")
    assert unsigned.status_code == 401
    # malformed JSON: 400; ping: 200; an event buildyard does not run for: 202 with the reason
    bad = b"{not json"
    assert deliver(server, shop["secret"], bad).status_code == 400
    ping = deliver(server, shop["secret"], json.dumps(payload("github_ping.json")).encode(), "ping")
    assert ping.status_code == 200 and ping.json()["verdict"] == "ping"
    issues = deliver(server, shop["secret"], b'{"action": "opened"}', "issues")
    assert issues.status_code == 202 and issues.json()["verdict"] == "ignored"
    assert "'issues' does not run" in issues.json()["reason"]
    assert queued_count(server, viewer) == 1

    # the delivery log: every delivery with its verdict, headers without the signature's secret
    log_rows = server.client(viewer).get("/api/v1/projects/shop/deliveries").json()["deliveries"]
    verdicts = [d["verdict"] for d in log_rows]
    assert verdicts.count("queued") == 1 and verdicts.count("duplicate") == 1
    assert verdicts.count("rejected") == 3 and "ping" in verdicts and "ignored" in verdicts
    first = next(d for d in log_rows if d["verdict"] == "queued")
    assert first["run_id"] == data["run_id"] and first["headers"]["x-github-event"] == "push"
    assert shop["secret"].decode() not in json.dumps(log_rows)
    # anonymous: no access to the log
    assert httpx.get(server.url + "/api/v1/projects/shop/deliveries").status_code == 401

    # redelivery: a maintainer only; it queues the same event again
    path = f"/api/v1/projects/shop/deliveries/{first['id']}/redeliver"
    assert server.client(viewer).post(path).status_code == 403
    redone = server.client(shop["tokens"]["maintainer"]).post(path)
    assert redone.status_code == 202, redone.text
    again_entry = finished(server, viewer, redone.json()["run_id"])
    assert again_entry["status"] == "success" and again_entry["sha"] == after


def test_the_commits_on_decides_and_unmatched_runs_close_as_not_triggered(shop, serve) -> None:
    server = serve(None, "--config", shop["config"])
    viewer = shop["tokens"]["viewer"]
    # a push touching only ignored paths: queued (the answer is quick), then closed by the runner
    before, after = commit(shop["work"], "docs/index.md", "# docs\n", "docs")
    answer = deliver(server, shop["secret"], github_push(shop, before, after, ["docs/index.md"]))
    assert answer.status_code == 202, answer.text
    done = finished(server, viewer, answer.json()["run_id"])
    assert done["status"] == "skipped" and done["run_id"] is None
    assert done["message"].startswith("not triggered: push to 'main' changes only ignored paths (docs/**)")
    # a branch that main's on.push.branches does not select
    before, after = commit(shop["work"], "src/x.py", "x = 1\n", "x", "other")
    git(shop["work"], "checkout", "-q", "main")
    answer = deliver(server, shop["secret"], github_push(shop, before, after, ["src/x.py"], "other"))
    done = finished(server, viewer, answer.json()["run_id"])
    assert done["status"] == "skipped"
    assert "the branch matches none of on.push.branches (main)" in done["message"]
    # the pipeline as it is at the pushed commit decides: this branch's buildyard.yml runs every push
    relaxed = PIPELINE.replace("branches: [main]\n    paths", "paths")
    before, after = commit(shop["work"], "buildyard.yml", relaxed, "all", "feature")
    git(shop["work"], "checkout", "-q", "main")
    answer = deliver(server, shop["secret"], github_push(shop, before, after, ["buildyard.yml"], "feature"))
    done = finished(server, viewer, answer.json()["run_id"])
    assert done["status"] == "success" and done["branch"] == "feature", done


def test_gitlab_and_generic_deliveries_find_their_project_by_repository(shop, serve) -> None:
    server = serve(None, "--config", shop["config"])
    viewer = shop["tokens"]["viewer"]
    before, after = commit(shop["work"], "src/app.py", "print('v3')\n", "v3 [skip ci]")
    data = payload("gitlab_push.json")
    data.update(ref="refs/heads/main", before=before, after=after, checkout_sha=after)
    data["project"]["git_http_url"] = shop["url"]
    data["repository"]["git_http_url"] = shop["url"]
    data["commits"] = [{"id": after, "message": "v3", "added": [], "modified": ["src/app.py"], "removed": []}]
    data["total_commits_count"] = 1
    body = json.dumps(data).encode()
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": str(uuid.uuid4())}
    wrong = httpx.post(
        server.url + "/hooks/gitlab", content=body, headers={**headers, "X-Gitlab-Token": "no"}
    )
    assert wrong.status_code == 401
    token = shop["secret"].decode()
    answer = httpx.post(
        server.url + "/hooks/gitlab", content=body, headers={**headers, "X-Gitlab-Token": token}
    )
    assert answer.status_code == 202 and answer.json()["project"] == "shop", answer.text
    assert finished(server, viewer, answer.json()["run_id"])["status"] == "success"
    dup = httpx.post(server.url + "/hooks/gitlab", content=body, headers={**headers, "X-Gitlab-Token": token})
    assert dup.status_code == 200 and dup.json()["duplicate"] is True

    generic = json.dumps(
        {
            "event": "push",
            "repository": shop["url"],
            "ref": "refs/heads/main",
            "sha": after,
            "message": "head [skip ci]",
            "delivery_id": "g-1",
        }
    ).encode()
    skipped = httpx.post(
        server.url + "/hooks/generic",
        content=generic,
        headers={"X-Buildyard-Signature-256": sign(shop["secret"], generic)},
    )
    assert skipped.status_code == 202 and skipped.json()["verdict"] == "skipped"
    # a repository no project serves
    other = json.dumps(
        {"event": "push", "repository": "acme/elsewhere", "ref": "main", "sha": after}
    ).encode()
    unknown = httpx.post(
        server.url + "/hooks/generic",
        content=other,
        headers={"X-Buildyard-Signature-256": sign(shop["secret"], other)},
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_repository"
    assert queued_count(server, viewer) == 1


def test_a_body_over_25_mb_is_refused_while_streaming(shop, serve) -> None:
    server = serve(None, "--config", shop["config"])

    def chunks():  # no Content-Length: the server must count what it reads
        for _ in range(26):
            yield b" " * (1024 * 1024)

    answer = httpx.post(
        server.url + "/hooks/github/shop", content=chunks(), headers={"X-GitHub-Event": "push"}, timeout=60
    )
    assert answer.status_code == 413 and answer.json()["code"] == "too_large"
    # an unknown hook kind and an unknown project are 404
    assert httpx.post(server.url + "/hooks/bitbucket/shop", content=b"{}").status_code == 404
    assert httpx.post(server.url + "/hooks/github/nope", content=b"{}").status_code == 404


SCHEDULED = """\
name: shop
on:
  schedule:
    - cron: "30 2 * * *"
      timezone: Europe/Berlin
jobs:
  nightly:
    script: echo "nightly on $BUILDYARD_BRANCH"
"""


def _schedule_entries(data_dir: Path) -> list[tuple[str, str, str]]:
    import sqlite3

    with sqlite3.connect(data_dir / "server.db") as db:
        return db.execute(
            "SELECT id, status, requested_by FROM server_queue WHERE event = 'schedule' ORDER BY enqueued_at"
        ).fetchall()


def test_a_due_schedule_fires_once_across_a_kill_9_and_restart(tmp_path, make_project, serve) -> None:
    import signal

    from server_testutil import stop

    work = make_project({"buildyard.yml": SCHEDULED}, name="nightly")
    config = tmp_path / "server.yml"
    config.write_text(f"projects:\n  - name: shop\n    repo: {work}\n    default_branch: main\n")
    data_dir = tmp_path / ".buildyard-server"
    # 02:30 in Berlin on 1 March 2027 is 01:30 UTC: due 20 s ago
    args = ("--config", config, "--schedule-interval", "0.2", "--frozen-clock")
    first = serve(None, *args, "2027-03-01T01:30:20+00:00")
    wait_for(lambda: _schedule_entries(data_dir), "the schedule to queue its run")
    stop(first, signal.SIGKILL)  # the claim and its queued run were committed together
    second = serve(None, *args, "2027-03-01T01:30:20+00:00")
    time.sleep(2.0)  # ~10 ticks of the restarted server at the same instant
    entries = _schedule_entries(data_dir)
    assert len(entries) == 1 and entries[0][2] == "schedule", entries
    # killed while queued or running: it ran, or was closed as abandoned; never queued twice
    done = wait_for(
        lambda: _schedule_entries(data_dir)[0][1] in ("success", "abandoned"), "the entry to be closed"
    )
    assert done
    runs = second.api.get("/api/v1/projects/shop/runs", params={"event": "schedule"}).json()["runs"]
    assert len(runs) <= 1 and all(r["trigger"] == "schedule" and r["branch"] == "main" for r in runs)
    stop(second)
    # the next night fires again, once
    third = serve(None, *args, "2027-03-02T01:30:05+00:00")
    wait_for(lambda: len(_schedule_entries(data_dir)) == 2, "the next night's run")
    time.sleep(1.0)
    assert len(_schedule_entries(data_dir)) == 2
    wait_for(lambda: _schedule_entries(data_dir)[1][1] == "success", "the next night's run to succeed")
    runs = third.api.get("/api/v1/projects/shop/runs", params={"event": "schedule"}).json()["runs"]
    assert runs[0]["trigger"] == "schedule" and runs[0]["branch"] == "main"


def test_server_runs_notify_through_the_servers_outbox_worker_without_waiting_for_a_slow_receiver(
    make_project, serve, cli, monkeypatch
) -> None:
    import hashlib
    import hmac
    import http.server
    import io
    import threading

    got: list[tuple[float, bytes, str]] = []
    slow = 8.0

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(slow)  # a slow receiver
            got.append((time.time(), body, self.headers.get("X-Buildyard-Signature-256", "")))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
        root = make_project(
            {
                "buildyard.yml": (
                    f"notify:\n  - on: always\n    webhook: {{url: '{url}', secret: HOOK_SECRET}}\n"
                    "jobs:\n  build:\n    script: echo built\n"
                )
            }
        )
        monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-hmac-key\n"))
        assert cli("-C", root, "secrets", "set", "HOOK_SECRET", "--value-stdin").code == 0
        server = serve(root)
        queued = server.api.post("/api/v1/projects/proj/runs", json={"branch": "main"}).json()["queued"]
        done = wait_for(
            lambda: (
                (e := server.api.get(f"/api/v1/projects/proj/queue/{queued['id']}").json())
                and e["status"] in FINAL
                and e
            ),
            "the run to finish",
        )
        assert done["status"] == "success"
        # the runner was free long before the receiver answered
        assert done["finished_at"] - done["started_at"] < slow - 2, done
        wait_for(lambda: got, "the notification", timeout=60)
        at, raw, signature = got[0]
        message = json.loads(raw)
        assert at > done["finished_at"]
        assert message["status"] == "success" and message["run"]["number"] == 1, message
        expected = "sha256=" + hmac.new(b"s3cret-hmac-key", raw, hashlib.sha256).hexdigest()
        assert signature == expected
        assert b"s3cret-hmac-key" not in raw
    finally:
        receiver.shutdown()
        receiver.server_close()
        thread.join()


MANUAL = """\
name: shop
on:
  manual:
    inputs:
      target: {type: choice, options: [staging, production], default: staging}
      dry_run: {type: boolean, default: false}
      reason: {type: string, required: true}
jobs:
  deploy:
    script: echo "to=$target dry=$dry_run why=$reason"
"""


def test_trigger_with_typed_inputs_locally_and_through_a_server(make_project, serve, cli) -> None:
    root = make_project({"buildyard.yml": MANUAL})
    server = serve(root)
    local = cli("-C", root, "trigger", "--input", "reason=hotfix", "--input", "dry_run=yes", "--json")
    assert local.code == 0, local.err
    queued = json.loads(local.out)
    assert queued["event"] == "manual"
    assert queued["variables"] == {"target": "staging", "dry_run": "true", "reason": "hotfix"}
    done = wait_for(
        lambda: (
            (e := server.api.get(f"/api/v1/projects/proj/queue/{queued['id']}").json())
            and e["status"] in FINAL
            and e
        ),
        "the manual run",
    )
    assert done["status"] == "success", done
    log = server.api.get(f"/api/v1/projects/proj/runs/{done['run_id']}/jobs/deploy/log").text
    assert "to=staging dry=true why=hotfix" in log

    # every problem in one line, nothing queued
    bad = cli("-C", root, "trigger", "--input", "target=prod", "--input", "reazon=x")
    assert bad.code == 2
    lines = bad.err.strip().splitlines()
    assert len(lines) == 1, bad.err
    assert "input 'target' must be one of staging, production, not 'prod'" in lines[0]
    assert "unknown input 'reazon' (did you mean 'reason'?)" in lines[0]
    assert "input 'reason' is required" in lines[0]
    assert cli("-C", root, "trigger", "--input", "novalue").code == 2

    # the same through --server (an open server on loopback needs no token)
    remote = cli(
        "trigger", "--server", server.url, "--input", "reason=r", "--input", "target=production", "--json"
    )
    assert remote.code == 0, remote.err
    entry_ = json.loads(remote.out)
    assert entry_["variables"] == {"target": "production", "dry_run": "false", "reason": "r"}
    refused = cli("trigger", "--server", server.url, "--input", "dry_run=maybe", "--input", "reason=r")
    assert refused.code == 2
    assert "server: invalid: input 'dry_run' is a boolean: use true or false, not 'maybe'" in refused.err
    # inputs are for manual runs; a push run of this pipeline needs no input
    assert cli("-C", root, "trigger", "--event", "push", "--input", "reason=r").code == 2
    queue = server.api.get("/api/v1/projects/proj/queue").json()["queue"]
    assert all(e["event"] == "manual" for e in queue)


SLOW_JOB = """\
name: slow
jobs:
  wait:
    script: sleep 3
"""


def test_max_parallel_runs_holds_a_project_back_while_other_projects_run(tmp_path, make_project, serve, cli):
    a = make_project({"buildyard.yml": SLOW_JOB}, name="a")
    b = make_project({"buildyard.yml": SLOW_JOB}, name="b")
    config = tmp_path / "server.yml"
    config.write_text(
        f"projects:\n  - name: a\n    repo: {a}\n    max_parallel_runs: 1\n  - name: b\n    repo: {b}\n"
    )
    server = serve(None, "--config", config, "--runners", "3")
    first = server.api.post("/api/v1/projects/a/runs", json={}).json()["queued"]
    second = server.api.post("/api/v1/projects/a/runs", json={}).json()["queued"]
    other = server.api.post("/api/v1/projects/b/runs", json={}).json()["queued"]

    def status(project: str, entry_id: str) -> dict[str, Any]:
        return server.api.get(f"/api/v1/projects/{project}/queue/{entry_id}").json()

    wait_for(lambda: status("b", other["id"])["status"] == "running", "b's run to start")
    assert status("a", first["id"])["status"] == "running"
    assert status("a", second["id"])["status"] == "queued"  # a free runner, but a's limit is reached
    done = [
        wait_for(lambda p=p, e=e: (s := status(p, e["id"]))["status"] in FINAL and s, f"{p}'s run")
        for p, e in (("a", first), ("a", second), ("b", other))
    ]
    assert [d["status"] for d in done] == ["success"] * 3
    assert done[1]["started_at"] >= done[0]["finished_at"]
    assert done[2]["started_at"] < done[0]["finished_at"]

    bad = tmp_path / "bad.yml"
    bad.write_text(f"projects:\n  - name: a\n    repo: {a}\n    max_parallel_runs: none\n")
    refused = cli("trigger", "--config", bad)
    assert refused.code == 2 and "bad.yml:4: max_parallel_runs is a whole number from 1" in refused.err
