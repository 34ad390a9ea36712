"""kill -9 of a real ``buildyard serve`` at the worst moments: between a delivery's answer and its run's
start, and between a failed run and its notification. After a restart each run happens once and the
notification reaches a real receiver on 127.0.0.1 once."""

from __future__ import annotations

import http.server
import json
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server_testutil import stop, wait_for

from buildyard.triggers.webhooks import sign
from by_testutil import git

PAYLOADS = Path(__file__).parents[1] / "triggers" / "payloads"
FINAL = ("success", "failed", "cancelled", "abandoned", "error", "skipped")

HELD = """\
name: shop
concurrency: "ci-${{ branch }}"
jobs:
  hold:
    script:
      - touch "MARKS/started-$BUILDYARD_BRANCH-$BUILDYARD_RUN_NUMBER"
      - while [ ! -e "MARKS/release" ]; do sleep 0.05; done
"""


def _entries(data_dir: Path) -> list[tuple[str, str, str, str | None]]:
    with sqlite3.connect(data_dir / "server.db") as db:
        return db.execute(
            "SELECT branch, sha, status, run_id FROM server_queue ORDER BY enqueued_at"
        ).fetchall()


def _push(work: Path, branch: str, text: str) -> tuple[str, str]:
    before = git(work, "rev-parse", "HEAD").strip()
    git(work, "checkout", "-q", "-B", branch)
    (work / "app.txt").write_text(text)
    git(work, "commit", "-q", "-am", text)
    git(work, "push", "-q", "origin", branch)
    return before, git(work, "rev-parse", "HEAD").strip()


def _deliver(url: str, secret: bytes, branch: str, before: str, after: str) -> str:
    import httpx

    data = json.loads((PAYLOADS / "github_push.json").read_text())
    data["ref"], data["before"], data["after"] = f"refs/heads/{branch}", before, after
    head = dict(data["commits"][0], id=after, added=[], removed=[], modified=["app.txt"], message="change")
    data["commits"], data["head_commit"], data["size"] = [head], head, 1
    body = json.dumps(data).encode()
    headers = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": f"{branch}-{after}",
        "X-Hub-Signature-256": sign(secret, body),
    }
    answer = httpx.post(url + "/hooks/github/shop", content=body, headers=headers, timeout=30)
    assert answer.status_code == 202 and answer.json()["verdict"] == "queued", answer.text
    return str(answer.json()["run_id"])


def test_deliveries_answered_before_a_kill_9_run_once_after_the_restart(
    tmp_path: Path, make_project, cli, serve
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    work = make_project({"buildyard.yml": HELD.replace("MARKS", str(marks)), "app.txt": "0"}, name="work")
    remote = tmp_path / "shop.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(remote))
    git(work, "remote", "add", "origin", str(remote))
    config = tmp_path / "server.yml"
    config.write_text(f"projects:\n  - name: shop\n    repo: file://{remote}\n    default_branch: main\n")
    secret = cli("secrets", "webhook", "--project", "shop", "--config", config).out.strip().encode()
    data_dir = tmp_path / ".buildyard-server"
    first = serve(None, "--config", config, "--runners", "2")

    running = _deliver(first.url, secret, "main", *_push(work, "main", "a"))
    wait_for((marks / "started-main-1").exists, "the first run's job")
    pending = _deliver(first.url, secret, "main", *_push(work, "main", "b"))  # claimed, waits for its turn
    wait_for(lambda: _entries(data_dir)[1][2] == "waiting", "the second run to wait for its turn")
    dev = _deliver(first.url, secret, "dev", *_push(work, "dev", "c"))
    wait_for(lambda: list(marks.glob("started-dev-*")), "the dev run's job (the second runner)")
    queued = _deliver(first.url, secret, "dev2", *_push(work, "dev2", "d"))  # no runner free: queued
    time.sleep(0.5)
    states = {e[0] + e[2] for e in _entries(data_dir)}
    assert states == {"mainrunning", "mainwaiting", "devrunning", "dev2queued"}, states
    stop(first, signal.SIGKILL)  # every delivery was answered; two of those runs had not started

    second = serve(None, "--config", config, "--runners", "2")  # answers once it closed what was left
    (marks / "release").touch()
    ids = [running, pending, dev, queued]
    wait_for(
        lambda: all(
            second.api.get(f"/api/v1/projects/shop/queue/{i}").json()["status"] in FINAL for i in ids
        ),
        "every entry to end",
    )
    status = {i: second.api.get(f"/api/v1/projects/shop/queue/{i}").json()["status"] for i in ids}
    assert status == {running: "abandoned", pending: "success", dev: "abandoned", queued: "success"}
    runs = second.api.get("/api/v1/projects/shop/runs", params={"limit": 50}).json()["runs"]
    per_sha: dict[str, int] = {}
    for run in runs:
        per_sha[run["sha"]] = per_sha.get(run["sha"], 0) + 1
    assert sorted(per_sha.values()) == [1, 1, 1, 1], per_sha  # each delivered push ran exactly once
    assert len(_entries(data_dir)) == 4


class _Receiver:
    """An HTTP receiver on 127.0.0.1 that fails its first request (503) and records every request."""

    def __init__(self) -> None:
        self.got: list[tuple[str, int]] = []  # (X-Buildyard-Delivery, status answered)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                code = 503 if not receiver.got else 204
                receiver.got.append((self.headers.get("X-Buildyard-Delivery", ""), code))
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    made = _Receiver()
    made.thread.start()
    yield made
    made.server.shutdown()
    made.server.server_close()
    made.thread.join()


def test_a_failed_runs_notification_is_delivered_once_across_a_kill_9(make_project, serve, receiver) -> None:
    root = make_project(
        {
            "buildyard.yml": (
                f"notify:\n  - on: failure\n    webhook: {{url: '{receiver.url}'}}\n"
                "jobs:\n  build:\n    script: exit 3\n"
            )
        }
    )
    first = serve(root)
    queued = first.api.post("/api/v1/projects/proj/runs", json={"branch": "main"}).json()["queued"]
    wait_for(lambda: receiver.got, "the first attempt (answered 503)")
    stop(first, signal.SIGKILL)  # the run failed; its notification is not delivered yet
    assert receiver.got == [(receiver.got[0][0], 503)]
    second = serve(root)
    done = second.api.get(f"/api/v1/projects/proj/queue/{queued['id']}").json()
    assert done["status"] == "failed"
    wait_for(lambda: len(receiver.got) == 2, "the notification after the restart", timeout=30)
    time.sleep(3.0)  # nothing more comes
    key = receiver.got[0][0]
    assert key and receiver.got == [(key, 503), (key, 204)]  # one message, delivered once
    runs = second.api.get("/api/v1/projects/proj/runs").json()["runs"]
    assert [r["status"] for r in runs] == ["failed"]  # the run happened once
