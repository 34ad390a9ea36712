"""A pipeline whose job commits and pushes triggers itself through a real ``buildyard serve`` only up
to ``trigger_chain_limit`` runs in a row (the ``Buildyard-Run:`` trailer names the pushing run)."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from server_testutil import Server, wait_for

from buildyard.triggers.chains import triggering_run
from buildyard.triggers.webhooks import sign
from by_testutil import git

PAYLOADS = Path(__file__).parents[1] / "triggers" / "payloads"
FINAL = ("success", "failed", "cancelled", "abandoned", "error", "skipped")

PIPELINE = """\
name: bot
jobs:
  bump:
    script:
      - echo "run $BUILDYARD_RUN_NUMBER" > bumped.txt
      - git add bumped.txt
      - >-
        git -c user.name=bot -c user.email=bot@example.com commit -q -m "bump by run $BUILDYARD_RUN_NUMBER"
        --trailer "Buildyard-Run: $BUILDYARD_RUN_ID"
      - git push -q REMOTE HEAD:refs/heads/main
"""


def deliver(server: Server, secret: bytes, remote: Path, before: str) -> httpx.Response:
    """GitHub's push event for the head of ``main`` in ``remote`` (its message as the head commit's)."""
    after = git(remote, "rev-parse", "main").strip()
    message = git(remote, "log", "-1", "--format=%B", "main")
    data = json.loads((PAYLOADS / "github_push.json").read_text())
    data["ref"], data["before"], data["after"] = "refs/heads/main", before, after
    head = copy.deepcopy(data["commits"][0])
    head.update(id=after, added=[], removed=[], modified=["bumped.txt"], message=message)
    data["commits"], data["head_commit"], data["size"] = [head], head, 1
    body = json.dumps(data).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(secret, body),
    }
    return httpx.post(server.url + "/hooks/github/bot", content=body, headers=headers, timeout=30)


def test_a_self_pushing_pipeline_stops_at_the_chain_limit(tmp_path: Path, make_project, cli, serve) -> None:
    remote = tmp_path / "bot.git"
    work = make_project({"buildyard.yml": PIPELINE.replace("REMOTE", f"file://{remote}")}, name="work")
    git(tmp_path, "clone", "-q", "--bare", str(work), str(remote))
    config = tmp_path / "server.yml"
    config.write_text(
        "trigger_chain_limit: 2\n"
        f"projects:\n  - name: bot\n    repo: file://{remote}\n    default_branch: main\n"
    )
    secret = cli("secrets", "webhook", "--project", "bot", "--config", config).out.strip().encode()
    token = cli("token", "create", "--name", "v", "--role", "viewer", "--config", config).out.strip()
    server = serve(None, "--config", config)
    api = server.client(token)

    def finished(entry_id: str) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            data: dict[str, Any] = api.get(f"/api/v1/projects/bot/queue/{entry_id}").json()
            return data if data["status"] in FINAL else None

        return dict(wait_for(done, f"entry {entry_id} to end"))

    before = "0" * 40
    parent: dict[str, Any] | None = None
    for depth in range(3):  # the first run (a person's push), then 2 runs triggered by their own pushes
        answer = deliver(server, secret, remote, before)
        assert answer.status_code == 202 and answer.json()["verdict"] == "queued", answer.text
        entry = finished(answer.json()["run_id"])
        assert entry["status"] == "success", entry
        assert entry["chain_depth"] == depth
        assert entry["triggered_by"] == (None if parent is None else parent["run_id"])
        pushed = git(remote, "log", "-1", "--format=%B", "main")
        assert triggering_run(pushed) == entry["run_id"]  # the job's commit names its run
        before, parent = git(remote, "rev-parse", "main~1").strip(), entry

    refused = deliver(server, secret, remote, before)
    assert refused.status_code == 202, refused.text
    data = refused.json()
    assert data["verdict"] == "skipped" and data["run_id"] is None
    assert data["reason"] == (
        "not queued: the commit was pushed by run #3; this would be run 3 in a row triggered by a run's "
        "own push, more than trigger_chain_limit (2)"
    )
    log = api.get("/api/v1/projects/bot/deliveries").json()["deliveries"]
    assert log[0]["verdict"] == "skipped" and log[0]["reason"] == data["reason"]
    assert [d["verdict"] for d in log[1:]] == ["queued"] * 3
    runs = api.get("/api/v1/projects/bot/runs").json()
    assert len(runs["runs"]) == 3
