"""Pipeline-level ``concurrency:`` through a real ``buildyard serve``: pushes to one branch supersede
(or wait for) each other, pushes to different branches run in parallel."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_testutil import Server, wait_for

from buildyard.triggers.webhooks import sign
from by_testutil import git

PAYLOADS = Path(__file__).parents[1] / "triggers" / "payloads"
FINAL = ("success", "failed", "cancelled", "abandoned", "error", "skipped")

PIPELINE = """\
name: shop
concurrency: {group: "ci-${{ branch }}", cancel_in_progress: CANCEL}
jobs:
  hold:
    script:
      - touch "MARKS/started-$BUILDYARD_RUN_NUMBER"
      - while [ ! -e "MARKS/release" ]; do sleep 0.05; done
"""


@pytest.fixture
def project(tmp_path: Path, make_project, cli, request: pytest.FixtureRequest) -> dict[str, Any]:
    marks = tmp_path / "marks"
    marks.mkdir()
    text = PIPELINE.replace("MARKS", str(marks)).replace("CANCEL", request.param)
    work = make_project({"buildyard.yml": text, "src/app.py": "print('hi')\n"}, name="work")
    remote = tmp_path / "shop.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(remote))
    git(work, "remote", "add", "origin", str(remote))
    config = tmp_path / "server.yml"
    config.write_text(f"projects:\n  - name: shop\n    repo: file://{remote}\n    default_branch: main\n")
    secret = cli("secrets", "webhook", "--project", "shop", "--config", config)
    assert secret.code == 0, secret.err
    made = cli("token", "create", "--name", "viewer", "--role", "viewer", "--config", config)
    assert made.code == 0, made.err
    return {
        "work": work,
        "marks": marks,
        "config": config,
        "secret": secret.out.strip().encode(),
        "token": made.out.strip(),
    }


def push(project: dict[str, Any], server: Server, branch: str, content: str) -> str:
    """Commit on ``branch``, push it, deliver GitHub's push event; the queue entry's id."""
    work: Path = project["work"]
    before = git(work, "rev-parse", "HEAD").strip()
    git(work, "checkout", "-q", "-B", branch)
    (work / "src" / "app.py").write_text(content)
    git(work, "commit", "-q", "-am", content)
    git(work, "push", "-q", "origin", branch)
    after = git(work, "rev-parse", "HEAD").strip()
    data = json.loads((PAYLOADS / "github_push.json").read_text())
    data["ref"], data["before"], data["after"] = f"refs/heads/{branch}", before, after
    head = copy.deepcopy(data["commits"][0])
    head.update(id=after, added=[], removed=[], modified=["src/app.py"], message=content)
    data["commits"], data["head_commit"], data["size"] = [head], head, 1
    body = json.dumps(data).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(project["secret"], body),
    }
    answer = httpx.post(server.url + "/hooks/github/shop", content=body, headers=headers, timeout=30)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["run_id"])


def entry(server: Server, project: dict[str, Any], entry_id: str) -> dict[str, Any]:
    answer = server.client(project["token"]).get(f"/api/v1/projects/shop/queue/{entry_id}")
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


def started(server: Server, project: dict[str, Any], entry_id: str) -> int:
    """Wait until the run of ``entry_id`` has its job going; its run number."""

    def number() -> int | None:
        n = entry(server, project, entry_id).get("run_number")
        return n if n and (project["marks"] / f"started-{n}").exists() else None

    return int(wait_for(number, f"entry {entry_id} to start its job"))


def finished(server: Server, project: dict[str, Any], entry_id: str) -> dict[str, Any]:
    return wait_for(
        lambda: (e := entry(server, project, entry_id))["status"] in FINAL and e, f"entry {entry_id} to end"
    )


@pytest.mark.parametrize("project", ["true"], indirect=True)
def test_a_newer_push_cancels_the_run_in_progress_of_its_branch_only(project, serve) -> None:
    server = serve(None, "--config", project["config"], "--runners", "3")
    first = push(project, server, "main", "v2")
    n1 = started(server, project, first)
    second = push(project, server, "main", "v3")
    n2 = started(server, project, second)
    done = finished(server, project, first)
    assert done["status"] == "cancelled"
    assert done["message"] == f"superseded by run {n2}"
    other = push(project, server, "dev", "dev1")  # another branch: another group, runs beside it
    n3 = started(server, project, other)
    assert entry(server, project, second)["status"] == "running"
    assert {n1, n2, n3} == {1, 2, 3}
    (project["marks"] / "release").touch()
    assert finished(server, project, second)["status"] == "success"
    assert finished(server, project, other)["status"] == "success"


@pytest.mark.parametrize("project", ["false"], indirect=True)
def test_a_newer_push_waits_and_replaces_the_older_pending_run(project, serve) -> None:
    server = serve(None, "--config", project["config"], "--runners", "2")
    first = push(project, server, "main", "v2")
    started(server, project, first)
    second = push(project, server, "main", "v3")
    wait_for(lambda: entry(server, project, second)["status"] == "waiting", "the second run to be pending")
    pending = entry(server, project, second)
    assert pending["message"] == "pending: waiting for the run in progress in concurrency group 'ci-main'"
    assert pending["run_id"] is None  # no run yet: it holds no runner
    third = push(project, server, "main", "v4")
    dropped = finished(server, project, second)
    assert dropped["status"] == "cancelled"
    assert dropped["message"] == f"superseded by a newer pending run (queue entry {third[:12]})"
    wait_for(lambda: entry(server, project, third)["status"] == "waiting", "the third run to be pending")
    assert entry(server, project, first)["status"] == "running"
    (project["marks"] / "release").touch()
    assert finished(server, project, first)["status"] == "success"
    assert finished(server, project, third)["status"] == "success"
    assert sorted(p.name for p in project["marks"].glob("started-*")) == ["started-1", "started-2"]
