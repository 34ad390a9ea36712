"""The outbox: messages in the database, delivered at least once with exponential backoff and jitter.

A message is *pending* until a worker delivers it (*delivered*) or it has failed ``max_attempts``
times (*dead*, with the last error, shown to maintainers). Workers in several processes share the
table: each claims a message with a conditional update (a lease of ``lease`` seconds), so a message
is sent by one worker at a time, and a worker killed mid-send leaves a lease that expires: the
message is sent again (at least once).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from buildyard.notify.messages import Message
from buildyard.store.schema import notify_outbox as table
from buildyard.termtext import safe_text

MAX_ERROR_CHARS = 1000


class OutboxStatus(StrEnum):
    """Where a message is in its life."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One message of the outbox as stored."""

    id: int
    kind: str
    channel: dict[str, Any]
    payload: dict[str, Any]
    status: OutboxStatus
    attempts: int
    next_attempt_at: float
    last_error: str
    #: What makes the message unique (a run's end, per channel): sent as its idempotency key.
    dedup_key: str = ""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before attempt ``n+1`` after ``n`` failures: ``base·2^(n-1)``, capped, times a jitter
    factor in [0.5, 1) (so receivers coming back are not hit by every sender at once)."""

    base: float = 2.0
    cap: float = 3600.0

    def delay(self, failures: int, rng: Callable[[], float]) -> float:
        """Seconds to wait after the ``failures``-th failure."""
        growth: float = 2.0 ** max(0, failures - 1)
        return min(self.cap, self.base * growth) * (0.5 + rng() / 2)


class Outbox:
    """The ``notify_outbox`` table behind a small interface (put, claim, delivered, failed)."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], float] = time.time,
        max_attempts: int = 8,
        backoff: Backoff | None = None,
        rng: Callable[[], float] = random.random,
        lease: float = 60.0,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff()
        self.rng = rng
        self.lease = lease

    def put(self, messages: Sequence[Message], conn: Connection | None = None) -> list[int]:
        """Queue ``messages`` (those queued before, by ``dedup_key``, are not queued again); their ids."""
        if conn is None:
            with self.engine.begin() as own:
                return self.put(messages, own)
        now = self.clock()
        ids: list[int] = []
        for message in messages:
            row = {
                "dedup_key": message.dedup_key,
                "kind": message.kind,
                "channel": message.channel,
                "payload": message.payload,
                "status": OutboxStatus.PENDING.value,
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
                "last_error": "",
            }
            new_id = conn.execute(
                _insert_ignoring_duplicates(conn).values(**row).returning(table.c.id)
            ).scalar()
            if new_id is not None:  # else: queued before (the run's end was reported twice)
                ids.append(int(new_id))
        return ids

    def claim(self, limit: int = 20) -> list[OutboxEntry]:
        """Due pending messages this caller now holds for ``lease`` seconds (oldest first)."""
        now = self.clock()
        due = (
            sa.select(table.c.id)
            .where(
                table.c.status == OutboxStatus.PENDING.value,
                table.c.next_attempt_at <= now,
                sa.or_(table.c.claimed_until.is_(None), table.c.claimed_until < now),
            )
            .order_by(table.c.next_attempt_at, table.c.id)
            .limit(limit)
        )
        claimed: list[OutboxEntry] = []
        with self.engine.begin() as conn:
            for (entry_id,) in conn.execute(due).all():
                won = conn.execute(
                    table.update()
                    .where(
                        table.c.id == entry_id,
                        table.c.status == OutboxStatus.PENDING.value,
                        sa.or_(table.c.claimed_until.is_(None), table.c.claimed_until < now),
                    )
                    .values(claimed_until=now + self.lease)
                ).rowcount
                if won == 1:
                    row = conn.execute(sa.select(table).where(table.c.id == entry_id)).mappings().one()
                    claimed.append(_entry(row))
        return claimed

    def delivered(self, entry_id: int) -> None:
        """Mark a claimed message delivered."""
        self.finish([(entry_id, None)])

    def failed(self, entry_id: int, error: str) -> OutboxStatus:
        """Record a failed attempt: retry after the backoff, or dead after ``max_attempts``."""
        return self.finish([(entry_id, error)])[0]

    def finish(self, results: Sequence[tuple[int, str | None]]) -> list[OutboxStatus]:
        """Record attempts in one transaction: ``(id, None)`` delivered, ``(id, error)`` failed (retried
        after the backoff, dead after ``max_attempts``). One transaction per batch keeps a busy SQLite
        database from serialising every sender on its write lock."""
        out: list[OutboxStatus] = []
        if not results:
            return out
        now = self.clock()
        with self.engine.begin() as conn:
            ids = [entry_id for entry_id, _ in results]
            attempts = dict(
                conn.execute(sa.select(table.c.id, table.c.attempts).where(table.c.id.in_(ids))).all()
            )
            for entry_id, error in results:
                tries = int(attempts.get(entry_id, 0)) + 1
                values: dict[str, Any] = {"attempts": tries, "claimed_until": None}
                if error is None:
                    status = OutboxStatus.DELIVERED
                    values["delivered_at"] = now
                else:
                    dead = tries >= self.max_attempts
                    status = OutboxStatus.DEAD if dead else OutboxStatus.PENDING
                    values["next_attempt_at"] = now + (0.0 if dead else self.backoff.delay(tries, self.rng))
                    values["last_error"] = safe_text(error)[:MAX_ERROR_CHARS]
                values["status"] = status.value
                conn.execute(table.update().where(table.c.id == entry_id).values(**values))
                out.append(status)
        return out

    def entries(self, status: OutboxStatus | None = None, *, limit: int = 100) -> list[OutboxEntry]:
        """Messages (of ``status``), newest first: the dead letters for the UI, for instance."""
        query = sa.select(table).order_by(table.c.id.desc()).limit(max(1, min(limit, 10_000)))
        if status is not None:
            query = query.where(table.c.status == status.value)
        with self.engine.connect() as conn:
            return [_entry(r) for r in conn.execute(query).mappings()]

    def next_due(self) -> float | None:
        """When the next pending message is due (``None``: nothing pending)."""
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.min(table.c.next_attempt_at)).where(
                    table.c.status == OutboxStatus.PENDING.value
                )
            ).scalar()
        return None if value is None else float(value)


def _insert_ignoring_duplicates(conn: Connection) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` in the connection's dialect (the one backend difference)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert  # noqa: PLC0415

        return pg_insert(table).on_conflict_do_nothing(index_elements=["dedup_key"])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert  # noqa: PLC0415

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=["dedup_key"])


def _entry(row: Any) -> OutboxEntry:
    return OutboxEntry(
        id=int(row["id"]),
        kind=row["kind"],
        channel=dict(row["channel"]),
        payload=dict(row["payload"]),
        status=OutboxStatus(row["status"]),
        attempts=int(row["attempts"]),
        next_attempt_at=float(row["next_attempt_at"]),
        last_error=row["last_error"],
        dedup_key=row.get("dedup_key") or "",
    )
