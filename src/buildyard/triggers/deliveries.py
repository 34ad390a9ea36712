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
import time
from collections.abc import Callable, Mapping
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

    def __init__(self, engine: Engine, enqueue: Enqueue, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.enqueue = enqueue
        self.clock = clock

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
            return DeliveryResult(self._insert(row), Verdict.REJECTED, str(exc), exc.http_status)
        row.update(
            delivery_id=parsed.delivery_id,
            event=parsed.kind[:64],
            verdict=parsed.verdict.value,
            reason=parsed.reason,
            trigger=None if parsed.event is None else event_json(parsed.event),
            dedup_key=dedup_key(source, project, parsed.event, parsed.delivery_id),
        )
        try:
            with self.engine.begin() as conn:
                row_id = _insert_in(conn, row)
                run_id = None
                verdict, reason = parsed.verdict, parsed.reason
                if parsed.verdict is Verdict.QUEUED and parsed.event is not None:
                    try:
                        run_id = self.enqueue(conn, parsed.event)
                    except ChainTooDeep as exc:  # refused, and said so in the log
                        verdict, reason = Verdict.SKIPPED, str(exc)
                    conn.execute(
                        deliveries.update()
                        .where(deliveries.c.id == row_id)
                        .values(run_id=run_id, verdict=verdict.value, reason=reason)
                    )
        except IntegrityError:
            first = self._first(row["dedup_key"])
            reason = f"delivery seen before (#{first})" if first is not None else "delivery seen before"
            row.update(verdict=Verdict.DUPLICATE.value, reason=reason, dedup_key=None)
            return DeliveryResult(self._insert(row), Verdict.DUPLICATE, reason, 200)
        return DeliveryResult(row_id, verdict, reason, HTTP_STATUS[verdict], run_id)

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

    def _insert(self, row: dict[str, Any]) -> int:
        with self.engine.begin() as conn:
            return _insert_in(conn, row)

    def _first(self, key: str | None) -> int | None:
        if key is None:
            return None
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(deliveries.c.id).where(deliveries.c.dedup_key == key)).scalar()
        return None if value is None else int(value)


def _insert_in(conn: Connection, row: dict[str, Any]) -> int:
    key = conn.execute(deliveries.insert().values(**row)).inserted_primary_key
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
