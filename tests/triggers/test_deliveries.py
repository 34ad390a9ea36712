"""The delivery log on a real database: one run per delivery, duplicates and forgeries queue nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Connection, Engine

from buildyard.errors import NotFoundError
from buildyard.model import Event
from buildyard.store.history import SqlHistory
from buildyard.triggers.deliveries import DeliveryService
from buildyard.triggers.events import TriggerEvent
from buildyard.triggers.webhooks import Source, Verdict

PAYLOADS = Path(__file__).parent / "payloads"
SECRET = b"hook secret"


def body(name: str, **changes: Any) -> bytes:
    data = json.loads((PAYLOADS / name).read_text())
    data.update(changes)
    return json.dumps(data).encode()


def headers(event: str, raw: bytes, delivery: str, *, secret: bytes = SECRET) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest(),
        "Authorization": "Bearer do-not-log",
    }


class Queue:
    """A stand-in for the server's run queue: rows written in the delivery's transaction."""

    def __init__(self) -> None:
        self.events: list[TriggerEvent] = []

    def __call__(self, conn: Connection, event: TriggerEvent) -> str:
        self.events.append(event)
        return f"run-{len(self.events)}"


@pytest.fixture
def engine(history_url: str) -> Iterator[Engine]:
    history = SqlHistory(history_url)
    yield history.engine
    history.close()


@pytest.fixture
def service(engine: Engine) -> tuple[DeliveryService, Queue]:
    queue = Queue()
    return DeliveryService(engine, queue, clock=lambda: 1_800_000_000.0), queue


def test_a_delivery_queues_one_run_and_a_duplicate_none(service: tuple[DeliveryService, Queue]) -> None:
    hooks, queue = service
    raw = body("github_push.json")
    first = hooks.receive(Source.GITHUB, "hello", headers("push", raw, "72d3162e"), raw, SECRET)
    assert (first.verdict, first.http_status, first.run_id, first.duplicate) == (
        Verdict.QUEUED,
        202,
        "run-1",
        False,
    )
    again = hooks.receive(Source.GITHUB, "hello", headers("push", raw, "72d3162e"), raw, SECRET)
    assert (again.verdict, again.http_status, again.run_id) == (Verdict.DUPLICATE, 200, None)
    assert again.to_json()["duplicate"] is True
    assert again.reason == f"delivery seen before (#{first.id})"
    assert len(queue.events) == 1
    log = hooks.recent(project="hello")
    assert [r.verdict for r in log] == [Verdict.DUPLICATE, Verdict.QUEUED]
    assert log[1].run_id == "run-1" and log[1].trigger is not None
    assert log[1].trigger.changed_paths == queue.events[0].changed_paths
    assert "Authorization" not in log[1].headers and log[1].headers["X-GitHub-Delivery"] == "72d3162e"


def test_a_forged_delivery_is_logged_rejected_and_cannot_preempt_the_real_one(
    service: tuple[DeliveryService, Queue],
) -> None:
    hooks, queue = service
    raw = body("github_push.json")
    forged = hooks.receive(
        Source.GITHUB, "hello", headers("push", raw, "same-id", secret=b"guess"), raw, SECRET
    )
    assert (forged.verdict, forged.http_status) == (Verdict.REJECTED, 401)
    real = hooks.receive(Source.GITHUB, "hello", headers("push", raw, "same-id"), raw, SECRET)
    assert real.verdict is Verdict.QUEUED
    assert len(queue.events) == 1
    malformed = hooks.receive(Source.GITHUB, "hello", headers("push", b"{", "x"), b"{", SECRET)
    assert (malformed.verdict, malformed.http_status) == (Verdict.REJECTED, 400)


def test_ignored_skipped_and_ping_queue_nothing(service: tuple[DeliveryService, Queue]) -> None:
    hooks, queue = service
    raw = body("github_ping.json")
    assert hooks.receive(Source.GITHUB, "p", headers("ping", raw, "1"), raw, SECRET).http_status == 200
    raw = body("github_pull_request.json", action="closed")
    ignored = hooks.receive(Source.GITHUB, "p", headers("pull_request", raw, "2"), raw, SECRET)
    assert (ignored.verdict, ignored.http_status) == (Verdict.IGNORED, 202)
    raw = body("github_push.json", head_commit={"message": "typo [skip ci]"})
    assert (
        hooks.receive(Source.GITHUB, "p", headers("push", raw, "3"), raw, SECRET).verdict is Verdict.SKIPPED
    )
    assert queue.events == []


def test_a_tag_announced_by_push_and_create_runs_once(service: tuple[DeliveryService, Queue]) -> None:
    hooks, queue = service
    push = body("github_push.json", ref="refs/tags/simple-tag")
    create = body("github_create_tag.json")
    assert (
        hooks.receive(Source.GITHUB, "p", headers("push", push, "a"), push, SECRET).verdict is Verdict.QUEUED
    )
    assert hooks.receive(Source.GITHUB, "p", headers("create", create, "b"), create, SECRET).duplicate
    assert [e.event for e in queue.events] == [Event.TAG]


def test_a_failed_enqueue_logs_nothing_so_the_redelivery_runs(engine: Engine) -> None:
    def down(conn: Connection, event: TriggerEvent) -> str:
        raise RuntimeError("queue down")

    raw = body("github_push.json")
    with pytest.raises(RuntimeError):
        DeliveryService(engine, down).receive(Source.GITHUB, "p", headers("push", raw, "r"), raw, SECRET)
    queue = Queue()
    result = DeliveryService(engine, queue).receive(
        Source.GITHUB, "p", headers("push", raw, "r"), raw, SECRET
    )
    assert result.verdict is Verdict.QUEUED and len(queue.events) == 1


def test_a_maintainer_redelivers(service: tuple[DeliveryService, Queue]) -> None:
    hooks, queue = service
    raw = body("github_push.json")
    first = hooks.receive(Source.GITHUB, "p", headers("push", raw, "z"), raw, SECRET)
    again = hooks.redeliver(first.id, actor="alice")
    assert (again.verdict, again.run_id, again.reason) == (
        Verdict.QUEUED,
        "run-2",
        f"redelivery of #{first.id} by alice",
    )
    assert queue.events[0] == queue.events[1]
    with pytest.raises(NotFoundError):
        hooks.redeliver(9999, actor="alice")


def test_the_batching_writer_queues_each_delivery_once_and_isolates_a_failing_one(engine: Engine) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from buildyard.triggers.deliveries import DeliveryWriter

    failing = {"d-13"}

    class Picky(Queue):
        """Fails (a database error, say) for some deliveries: only those fail."""

        def __call__(self, conn: Connection, event: TriggerEvent) -> str:
            if event.delivery_id in failing:
                raise RuntimeError("the queue insert failed")
            return super().__call__(conn, event)

    queue = Picky()
    writer = DeliveryWriter(engine, batch=8)
    hooks = DeliveryService(engine, queue, writer=writer)
    raw = body("github_push.json")
    ids = [f"d-{i % 40}" for i in range(60)]  # 40 distinct, 20 repeats, sent by 12 threads at once

    def send(delivery: str) -> str:
        try:
            return hooks.receive(
                Source.GITHUB, "p", headers("push", raw, delivery), raw, SECRET
            ).verdict.value
        except RuntimeError as exc:
            return str(exc)

    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            verdicts = list(pool.map(send, ids))
    finally:
        writer.close()
    assert verdicts.count("the queue insert failed") == 2  # d-13, and its repeat: nothing else failed
    assert verdicts.count("queued") == 39 and verdicts.count("duplicate") == 19
    import sqlalchemy as sa

    from buildyard.store.schema import deliveries

    with engine.connect() as conn:  # the log (a batch that rolled back left nothing of its jobs)
        rows = conn.execute(
            sa.select(deliveries.c.delivery_id, deliveries.c.run_id).where(deliveries.c.verdict == "queued")
        ).all()
    assert sorted(r.delivery_id for r in rows) == sorted({f"d-{i}" for i in range(40)} - failing)
    assert all(r.run_id for r in rows)
    # after close, a delivery still works (alone, in the caller's thread)
    late = hooks.receive(Source.GITHUB, "p", headers("push", raw, "late"), raw, SECRET)
    assert late.verdict is Verdict.QUEUED
