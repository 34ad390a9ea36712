"""The delivery log: every webhook delivery kept with its verdict; duplicates queue nothing.

``DeliveryService.receive`` is what a hook route calls with the raw request (source, headers, body)
and the project's secret: it authenticates and parses the delivery (``webhooks``), and in one
transaction records it and calls ``enqueue(conn, event)`` (the server's run queue lives in the same
database). A delivery whose id was seen before is answered as a duplicate and queues nothing — the
unique ``dedup_key`` makes that hold across processes and restarts, and it is set only for
authenticated deliveries, so a forged delivery cannot claim a real one's id. A tag announced twice by
GitHub (``push`` of ``refs/tags/…`` and ``create``) queues one run: tags deduplicate by name.
``enqueue`` may refuse an event by raising ``chains.ChainTooDeep``: the delivery is logged ``skipped``
with that reason.

Matching the event against the pipeline's ``on:`` happens when the queued run has loaded the
``buildyard.yml`` of its commit (``buildyard.triggers.match``), not here: the answer must be quick.
"""

from __future__ import annotations

import dataclasses
import hashlib
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from buildyard.errors import NotFoundError
from buildyard.model import Event
from buildyard.store.schema import deliveries
from buildyard.triggers.chains import ChainTooDeep
from buildyard.triggers.events import TriggerEvent
from buildyard.triggers.webhooks import DeliveryError, Source, Verdict, loggable_headers, parse_delivery

Enqueue = Callable[[Connection, TriggerEvent], str | None]

#: The HTTP status a route answers with, by verdict (rejections carry their own).
HTTP_STATUS = {
    Verdict.QUEUED: 202,
    Verdict.IGNORED: 202,
    Verdict.SKIPPED: 202,
    Verdict.PING: 200,
    Verdict.DUPLICATE: 200,
}


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The answer to one delivery: verdict, reason, queued run, and the HTTP status to send."""

    id: int
    verdict: Verdict
    reason: str
    http_status: int
    run_id: str | None = None

    @property
    def duplicate(self) -> bool:
        """Whether the delivery had been received before (``"duplicate": true`` in the answer)."""
        return self.verdict is Verdict.DUPLICATE

    def to_json(self) -> dict[str, Any]:
        """The body a hook route answers with."""
        return {
            "delivery": self.id,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "duplicate": self.duplicate,
            "run_id": self.run_id,
        }


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One row of the delivery log, as the UI shows it."""

    id: int
    source: str
    delivery_id: str
    project: str
    event: str
    received_at: float
    verdict: Verdict
    reason: str
    headers: dict[str, str]
    run_id: str | None
    trigger: TriggerEvent | None


def event_json(event: TriggerEvent) -> dict[str, Any]:
    """``event`` as plain JSON values (stored with a delivery or a queued run)."""
    data = dataclasses.asdict(event)
    data["event"] = event.event.value
    data["changed_paths"] = None if event.changed_paths is None else list(event.changed_paths)
    return data


def event_from_json(data: Any) -> TriggerEvent | None:
    """The event stored by ``event_json`` (``None`` for anything else)."""
    if not isinstance(data, dict):
        return None
    values = dict(data)
    values["event"] = Event(values["event"])
    paths = values.get("changed_paths")
    values["changed_paths"] = None if paths is None else tuple(paths)
    return TriggerEvent(**values)


def dedup_key(source: Source, project: str, event: TriggerEvent | None, delivery_id: str) -> str | None:
    """What makes two deliveries the same: the source's delivery id, or a tag's name; ``None``: none."""
    if event is not None and event.event is Event.TAG and event.tag:
        raw = f"{source.value}\0{project}\0tag\0{event.repository or event.repository_url}\0{event.tag}"
    elif delivery_id:
        raw = f"{source.value}\0{project}\0id\0{delivery_id}"
    else:
        return None
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


class DeliveryService:
    """Receives deliveries for projects: authenticate, parse, log, deduplicate, queue."""

    def __init__(
        self,
        engine: Engine,
        enqueue: Enqueue,
        *,
        clock: Callable[[], float] = time.time,
        writer: DeliveryWriter | None = None,
    ) -> None:
        """``writer``: commits the deliveries' transactions in batches from one thread (a server's);
        without it each delivery commits its own transaction in the caller's thread."""
        self.engine = engine
        self.enqueue = enqueue
        self.clock = clock
        self.writer = writer

    def receive(
        self, source: Source, project: str, headers: Mapping[str, str], body: bytes, secret: bytes
    ) -> DeliveryResult:
        """Handle one delivery; never raises for a bad delivery (its result says 401/413/400)."""
        row: dict[str, Any] = {
            "source": source.value,
            "project": project[:200],
            "received_at": self.clock(),
            "headers": loggable_headers(headers),
            "body_digest": hashlib.sha256(body).hexdigest(),
        }
        try:
            parsed = parse_delivery(source, headers, body, secret)
        except DeliveryError as exc:
            row.update(verdict=Verdict.REJECTED.value, reason=str(exc), delivery_id="", event="")
            status = exc.http_status
            return self._write(
                lambda conn: DeliveryResult(_insert_in(conn, row), Verdict.REJECTED, row["reason"], status)
            )
        row.update(
            delivery_id=parsed.delivery_id,
            event=parsed.kind[:64],
            verdict=parsed.verdict.value,
            reason=parsed.reason,
            trigger=None if parsed.event is None else event_json(parsed.event),
            dedup_key=dedup_key(source, project, parsed.event, parsed.delivery_id),
        )

        def record(conn: Connection) -> DeliveryResult:
            first = _first_in(conn, row["dedup_key"])
            if first is not None:  # seen before: logged as a duplicate, nothing queued
                reason = f"delivery seen before (#{first})"
                duplicate = {**row, "verdict": Verdict.DUPLICATE.value, "reason": reason, "dedup_key": None}
                return DeliveryResult(_insert_in(conn, duplicate), Verdict.DUPLICATE, reason, 200)
            row_id = _insert_in(conn, row)
            run_id = None
            verdict, reason = parsed.verdict, parsed.reason
            if parsed.verdict is Verdict.QUEUED and parsed.event is not None:
                try:
                    run_id = self.enqueue(conn, parsed.event)
                except ChainTooDeep as exc:  # refused, and said so in the log
                    verdict, reason = Verdict.SKIPPED, str(exc)
                outcome = {
                    "row_id": row_id,
                    "new_run": run_id,
                    "new_verdict": verdict.value,
                    "new_reason": reason,
                }
                conn.execute(_SET_OUTCOME, outcome)
            return DeliveryResult(row_id, verdict, reason, HTTP_STATUS[verdict], run_id)

        return self._write(record)

    def _write(self, job: Callable[[Connection], DeliveryResult]) -> DeliveryResult:
        if self.writer is not None:
            return self.writer.run(job)
        return _alone(self.engine, job)

    def redeliver(self, delivery: int, *, actor: str) -> DeliveryResult:
        """Queue the event of logged delivery ``delivery`` again (a maintainer's redelivery)."""
        record = self.get(delivery)
        if record.trigger is None:
            raise NotFoundError(f"delivery #{delivery} queued nothing: there is no event to redeliver")
        reason = f"redelivery of #{delivery} by {actor[:100]}"
        with self.engine.begin() as conn:
            row_id = _insert_in(
                conn,
                {
                    "source": record.source,
                    "delivery_id": record.delivery_id,
                    "project": record.project,
                    "event": record.event,
                    "received_at": self.clock(),
                    "verdict": Verdict.QUEUED.value,
                    "reason": reason,
                    "headers": {},
                    "body_digest": "",
                    "trigger": event_json(record.trigger),
                },
            )
            run_id = self.enqueue(conn, record.trigger)
            conn.execute(deliveries.update().where(deliveries.c.id == row_id).values(run_id=run_id))
        return DeliveryResult(row_id, Verdict.QUEUED, reason, 202, run_id)

    def get(self, delivery: int) -> DeliveryRecord:
        """One logged delivery; ``NotFoundError`` when there is none."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery)).mappings().first()
        if row is None:
            raise NotFoundError(f"no delivery #{delivery}")
        return _record(row)

    def recent(self, *, project: str | None = None, limit: int = 50) -> list[DeliveryRecord]:
        """The latest deliveries, newest first (of ``project`` when given)."""
        query = sa.select(deliveries).order_by(deliveries.c.id.desc()).limit(max(1, min(limit, 1000)))
        if project is not None:
            query = query.where(deliveries.c.project == project)
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(query).mappings()]


_INSERT = deliveries.insert()
_FIRST = sa.select(deliveries.c.id).where(deliveries.c.dedup_key == sa.bindparam("key"))
_SET_OUTCOME = (
    deliveries.update()
    .where(deliveries.c.id == sa.bindparam("row_id"))
    .values(
        run_id=sa.bindparam("new_run"), verdict=sa.bindparam("new_verdict"), reason=sa.bindparam("new_reason")
    )
)


def _first_in(conn: Connection, key: str | None) -> int | None:
    """The id of the delivery logged first with ``key`` (None: none, or no key)."""
    if key is None:
        return None
    value = conn.execute(_FIRST, {"key": key}).scalar()
    return None if value is None else int(value)


def _alone(engine: Engine, job: Callable[[Connection], DeliveryResult]) -> DeliveryResult:
    """``job`` in its own transaction; again once when another process logged the same delivery
    meanwhile (the unique ``dedup_key``): the second time it finds it and logs a duplicate."""
    try:
        with engine.begin() as conn:
            return job(conn)
    except IntegrityError:
        with engine.begin() as conn:
            return job(conn)


class DeliveryWriter:
    """Commits deliveries' transactions from one thread, in batches (group commit).

    Twenty senders each committing their own transaction on SQLite convoy on its write lock (its
    busy handler sleeps up to 100 ms between tries); here the callers' threads only parse and
    authenticate, then wait (``run``) while one thread runs up to ``batch`` waiting jobs in one
    transaction. A job that fails (a duplicate another process logged first, a database error)
    makes its batch roll back and every job of it run alone, so one bad job costs the others only
    time. A result is returned only once its transaction committed: the answer is durable.
    """

    def __init__(self, engine: Engine, *, batch: int = 64) -> None:
        self.engine = engine
        self.batch = batch
        self._jobs: queue.SimpleQueue[
            tuple[Callable[[Connection], DeliveryResult], Future[DeliveryResult]] | None
        ] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def run(self, job: Callable[[Connection], DeliveryResult]) -> DeliveryResult:
        """Run ``job`` in the next batch's transaction; its result once committed."""
        future: Future[DeliveryResult] = Future()
        with self._lock:
            if self._closed:
                return _alone(self.engine, job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="delivery-writer", daemon=True)
                self._thread.start()
            self._jobs.put((job, future))
        return future.result()

    def close(self) -> None:
        """Finish the jobs waiting, stop the thread; later jobs run alone in their callers' threads."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._jobs.put(None)
            thread.join()

    def _loop(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.batch:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._jobs.put(None)  # stop after this batch
                    break
                batch.append(more)
            self._commit(batch)

    def _commit(
        self, batch: list[tuple[Callable[[Connection], DeliveryResult], Future[DeliveryResult]]]
    ) -> None:
        try:
            with self.engine.begin() as conn:
                results = [job(conn) for job, _future in batch]
        except Exception:  # noqa: BLE001 - each job again alone: only the bad one fails
            for job, future in batch:
                try:
                    future.set_result(_alone(self.engine, job))
                except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
                    future.set_exception(exc)
            return
        for (_job, future), result in zip(batch, results, strict=True):
            future.set_result(result)


def _insert_in(conn: Connection, row: dict[str, Any]) -> int:
    key = conn.execute(_INSERT, row).inserted_primary_key
    if key is None:  # pragma: no cover - every backend we support returns it
        raise RuntimeError("the database returned no id for the new delivery")
    return int(key[0])


def _record(row: Any) -> DeliveryRecord:
    return DeliveryRecord(
        id=int(row["id"]),
        source=row["source"],
        delivery_id=row["delivery_id"],
        project=row["project"],
        event=row["event"],
        received_at=float(row["received_at"]),
        verdict=Verdict(row["verdict"]),
        reason=row["reason"],
        headers=dict(row["headers"] or {}),
        run_id=row["run_id"],
        trigger=event_from_json(row["trigger"]),
    )
