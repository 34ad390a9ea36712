"""Notifications: decided from notify:, queued in the outbox, delivered at least once to real receivers."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from buildyard.model import NotifyWhen, RunStatus
from buildyard.notify.decide import RunSummary, reasons
from buildyard.notify.hook import previous_status, queue_notifications
from buildyard.notify.messages import messages_for
from buildyard.notify.outbox import Backoff, Outbox, OutboxStatus
from buildyard.notify.worker import OutboxWorker
from buildyard.spec import loads
from buildyard.spec.models import NotifySpec
from buildyard.store.history import SqlHistory
from buildyard.store.schema import runs

SECRETS = {"HOOK_SECRET": "hmac-key", "SLACK_URL": "", "GH_TOKEN": "ghp_token_value"}


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 recording requests; fails the first ``fail`` of them with 503."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail: int = 0
    delay: float = 0.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            time.sleep(state.delay)
            state.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            failing = len(state.requests) <= state.fail
            self.send_response(503 if failing else 201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def engine(history_url: str) -> Iterator[Engine]:
    history = SqlHistory(history_url)
    yield history.engine
    history.close()


def notify(text: str) -> list[NotifySpec]:
    return loads(f"notify:\n{text}\njobs:\n  a: {{script: 'true'}}\n").notify


def run(status: RunStatus, **kw: Any) -> RunSummary:
    values: dict[str, Any] = {
        "run_id": "r1",
        "pipeline": "shop",
        "number": 7,
        "status": status,
        "branch": "main",
    }
    values.update(kw)
    values.setdefault("sha", "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c")
    return RunSummary(**values)


def test_when_notifications_are_sent() -> None:
    (spec,) = notify(
        "  - on: [failure, fixed]\n    branches: [main, 'release/**']\n    slack: {url_secret: S}"
    )
    assert reasons(spec, run(RunStatus.FAILED)) is NotifyWhen.FAILURE
    assert reasons(spec, run(RunStatus.SUCCESS, previous=RunStatus.FAILED)) is NotifyWhen.FIXED
    assert reasons(spec, run(RunStatus.SUCCESS, previous=RunStatus.SUCCESS)) is None
    assert reasons(spec, run(RunStatus.FAILED, branch="dev")) is None
    assert reasons(spec, run(RunStatus.FAILED, branch="release/2")) is NotifyWhen.FAILURE
    (always,) = notify("  - on: always\n    slack: {url_secret: S}")
    assert reasons(always, run(RunStatus.CANCELLED)) is NotifyWhen.ALWAYS
    assert reasons(always, run(RunStatus.RUNNING, waiting_for="deploy")) is None
    (approval,) = notify("  - on: [approval_needed]\n    slack: {url_secret: S}")
    assert reasons(approval, run(RunStatus.RUNNING, waiting_for="deploy")) is NotifyWhen.APPROVAL_NEEDED
    assert reasons(approval, run(RunStatus.FAILED)) is None


def test_messages_carry_no_secret_values() -> None:
    specs = notify(
        "  - on: [failure]\n    webhook: {url: 'https://h.example/x', secret: HOOK_SECRET}\n"
        "  - on: [failure]\n"
        "    commit_status: {provider: github, repository: acme/shop, token_secret: GH_TOKEN}"
    )
    leaked = run(RunStatus.FAILED, failed_jobs=("deploy-hunter2",), branch="main")
    messages = messages_for(specs, leaked, lambda text: text.replace("hunter2", "***"))
    text = json.dumps([[m.channel, m.payload] for m in messages])
    assert "hunter2" not in text and "deploy-***" in text
    assert "hmac-key" not in text and "ghp_token_value" not in text
    assert messages[0].channel == {"url": "https://h.example/x", "secret": "HOOK_SECRET"}
    assert messages[1].payload["state"] == "failure"


def test_webhook_is_signed_and_retried_until_delivered(engine: Engine, receiver: Receiver) -> None:
    receiver.fail = 2
    now = [1_000.0]
    outbox = Outbox(engine, clock=lambda: now[0], backoff=Backoff(base=10.0), rng=lambda: 1.0)
    specs = notify(f"  - on: failure\n    webhook: {{url: '{receiver.url}/ci', secret: HOOK_SECRET}}")
    assert len(queue_notifications(outbox, specs, run(RunStatus.FAILED), str)) == 1
    assert queue_notifications(outbox, specs, run(RunStatus.FAILED), str) == []  # once per run
    worker = OutboxWorker(outbox, SECRETS.get, concurrency=2)
    try:
        assert worker.run_once() == [OutboxStatus.PENDING]
        (entry,) = outbox.entries()
        assert entry.next_attempt_at == pytest.approx(1_010.0)  # 10 s, then 20 s (jitter factor 1.0)
        assert worker.run_once() == []  # not due yet
        now[0] = 1_010.0
        assert worker.run_once() == [OutboxStatus.PENDING]
        assert outbox.entries()[0].next_attempt_at == pytest.approx(1_030.0)
        now[0] = 1_030.0
        assert worker.run_once() == [OutboxStatus.DELIVERED]
    finally:
        worker.stop()
    assert len(receiver.requests) == 3
    last = receiver.requests[-1]
    expected = "sha256=" + hmac.new(b"hmac-key", last["body"], hashlib.sha256).hexdigest()
    assert last["headers"]["X-Buildyard-Signature-256"] == expected
    body = json.loads(last["body"])
    assert (body["pipeline"], body["status"], body["reason"], body["run"]["number"]) == (
        "shop",
        "failed",
        "failure",
        7,
    )


def test_dead_letter_after_n_attempts_with_the_last_error(engine: Engine, receiver: Receiver) -> None:
    receiver.fail = 100
    now = [0.0]
    outbox = Outbox(engine, clock=lambda: now[0], max_attempts=3, backoff=Backoff(base=1.0))
    outbox.put(
        messages_for(
            notify(f"  - on: failure\n    webhook: {{url: '{receiver.url}'}}"), run(RunStatus.FAILED), str
        )
    )
    worker = OutboxWorker(outbox, SECRETS.get)
    try:
        statuses = []
        for _ in range(3):
            statuses += worker.run_once()
            now[0] += 100
    finally:
        worker.stop()
    assert statuses == [OutboxStatus.PENDING, OutboxStatus.PENDING, OutboxStatus.DEAD]
    (dead,) = outbox.entries(OutboxStatus.DEAD)
    assert dead.attempts == 3 and dead.last_error.endswith("HTTP 503")
    assert outbox.next_due() is None


def test_pending_messages_survive_a_restart_and_a_lost_lease(history_url: str, receiver: Receiver) -> None:
    now = [50.0]
    first = SqlHistory(history_url)
    outbox = Outbox(first.engine, clock=lambda: now[0], lease=30.0)
    outbox.put(
        messages_for(
            notify(f"  - on: failure\n    webhook: {{url: '{receiver.url}'}}"), run(RunStatus.FAILED), str
        )
    )
    assert len(outbox.claim()) == 1  # a worker claims it, then the process is killed
    first.close()
    second = SqlHistory(history_url)
    try:
        again = Outbox(second.engine, clock=lambda: now[0], lease=30.0)
        assert again.claim() == []  # the lease still holds
        now[0] += 31
        worker = OutboxWorker(again, SECRETS.get)
        try:
            assert worker.run_once() == [OutboxStatus.DELIVERED]
        finally:
            worker.stop()
    finally:
        second.close()
    assert len(receiver.requests) == 1


def test_slack_and_commit_statuses_in_the_api_shapes(engine: Engine, receiver: Receiver) -> None:
    secrets = {"SLACK_URL": f"{receiver.url}/services/T0/B0/x", "GH": "ghp_abc", "GL": "glpat-abc"}
    specs = notify(
        "  - on: always\n    slack: {url_secret: SLACK_URL}\n"
        "  - on: always\n"
        "    commit_status: {provider: github, repository: acme/shop, token_secret: GH,\n"
        f"                    api: '{receiver.url}'}}\n"
        "  - on: always\n"
        "    commit_status: {provider: gitlab, repository: grp/shop, token_secret: GL,\n"
        f"                    api: '{receiver.url}/api/v4', context: ci}}"
    )
    outbox = Outbox(engine)
    queue_notifications(outbox, specs, run(RunStatus.SUCCESS, url="https://ci.example/runs/7"), str)
    worker = OutboxWorker(outbox, secrets.get, concurrency=1)
    try:
        assert sorted(worker.run_once()) == [OutboxStatus.DELIVERED] * 3
    finally:
        worker.stop()
    by_path = {r["path"]: r for r in receiver.requests}
    slack = json.loads(by_path["/services/T0/B0/x"]["body"])
    assert slack == {"text": "shop #7 success on main (0d1a26e6) <https://ci.example/runs/7|open>"}
    sha = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    github = by_path[f"/repos/acme/shop/statuses/{sha}"]
    assert github["headers"]["Authorization"] == "Bearer ghp_abc"
    assert json.loads(github["body"]) == {
        "state": "success",
        "target_url": "https://ci.example/runs/7",
        "description": "shop #7 success on main (0d1a26e6)",
        "context": "buildyard",
    }
    gitlab = by_path[f"/api/v4/projects/grp%2Fshop/statuses/{sha}"]
    assert gitlab["headers"]["PRIVATE-TOKEN"] == "glpat-abc"
    assert json.loads(gitlab["body"])["state"] == "success" and json.loads(gitlab["body"])["name"] == "ci"


def test_email_over_smtp(engine: Engine) -> None:
    from aiosmtpd.controller import Controller

    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(envelope)
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        specs = notify(
            "  - on: failure\n"
            f"    email: {{to: [team@example.com], from: ci@example.com, host: 127.0.0.1, port: {port}}}"
        )
        outbox = Outbox(engine)
        queue_notifications(outbox, specs, run(RunStatus.FAILED, failed_jobs=("test",)), str)
        worker = OutboxWorker(outbox, SECRETS.get)
        try:
            assert worker.run_once() == [OutboxStatus.DELIVERED]
        finally:
            worker.stop()
    finally:
        controller.stop()
    (envelope,) = received
    assert envelope.rcpt_tos == ["team@example.com"]
    text = envelope.content.decode()
    assert "Subject: [buildyard] shop #7 failed on main (0d1a26e6): failed test" in text


def test_a_slow_receiver_never_delays_queueing(engine: Engine, receiver: Receiver) -> None:
    receiver.delay = 1.0
    outbox = Outbox(engine)
    worker = OutboxWorker(outbox, SECRETS.get, poll=0.05)
    worker.start()
    try:
        specs = notify(f"  - on: always\n    webhook: {{url: '{receiver.url}'}}")
        started = time.monotonic()
        for i in range(5):
            queue_notifications(outbox, specs, run(RunStatus.SUCCESS, run_id=f"r{i}"), str)
        assert time.monotonic() - started < 0.5  # the runs' side only inserts rows
        deadline = time.monotonic() + 20
        while len(outbox.entries(OutboxStatus.DELIVERED)) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert len(receiver.requests) == 5


def test_previous_status_is_the_last_finished_run_of_the_branch(engine: Engine) -> None:
    rows = [
        ("a", 1, "failed", "main", 10.0),
        ("b", 2, "success", "dev", 20.0),
        ("c", 3, "running", "main", 30.0),
    ]
    with engine.begin() as conn:
        for run_id, number, status, branch, at in rows:
            conn.execute(
                runs.insert().values(
                    id=run_id,
                    pipeline="shop",
                    number=number,
                    status=status,
                    event="push",
                    branch=branch,
                    created_at=at,
                )
            )
    assert previous_status(engine, pipeline="shop", branch="main", before=40.0) is RunStatus.FAILED
    assert previous_status(engine, pipeline="shop", branch="dev", before=15.0) is None


KILLED_WORKER = """
import os, signal, sys
from buildyard.notify.outbox import Outbox
from buildyard.notify.worker import OutboxWorker
from buildyard.store.history import SqlHistory

def die(entry, secrets):
    os.kill(os.getpid(), signal.SIGKILL)  # killed while sending

outbox = Outbox(SqlHistory(sys.argv[1]).engine, clock=lambda: 100.0, lease=30.0)
OutboxWorker(outbox, lambda name: None, sender=die).run_once()
"""


def test_a_worker_killed_mid_send_leaves_the_message_to_be_delivered_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    import signal
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'history.db'}"
    history = SqlHistory(url)
    try:
        now = [100.0]
        outbox = Outbox(history.engine, clock=lambda: now[0], lease=30.0)
        specs = notify(f"  - on: failure\n    webhook: {{url: '{receiver.url}'}}")
        queue_notifications(outbox, specs, run(RunStatus.FAILED), str)
        script = tmp_path / "worker.py"
        script.write_text(KILLED_WORKER)
        proc = subprocess.run(
            [sys.executable, str(script), url], capture_output=True, timeout=60, check=False
        )
        assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
        assert outbox.claim() == []  # the dead worker's lease holds for 30 s
        now[0] = 131.0
        worker = OutboxWorker(outbox, SECRETS.get)
        try:
            assert worker.run_once() == [OutboxStatus.DELIVERED]
            assert worker.run_once() == []
        finally:
            worker.stop()
    finally:
        history.close()
    assert len(receiver.requests) == 1
