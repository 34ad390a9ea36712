"""Pipeline-level ``concurrency:`` in the run queue (GitHub semantics), per project.

A run's group is known once a runner has checked out its commit and loaded that ``buildyard.yml``
(a hook answers before any git work), so a runner decides, right before starting the run's process:

- ``cancel_in_progress: true``: every other member of the group (executing, or waiting for its
  turn) is marked ``cancelling`` ("superseded by run N", N filled in when the new run has its number);
  the new run starts at once.
- ``false``: when a member executes, the new run *waits for its turn*: status ``waiting`` without a
  history run (so it holds no runner), its checkout kept. GitHub keeps one pending run per group: the
  older pending one is cancelled ("superseded by a newer pending run"). When no member executes any
  more, the pending run takes the group (one conditional update) and starts once a runner is free.

A member "executes" while its entry is ``running``, ``cancelling`` or ``resuming`` (it has its turn
and waits for a free runner), or ``waiting`` with a history run (an approval wait). Deciding is one
transaction that writes first (SQLite takes its write lock then) and, on PostgreSQL, holds a
transaction-level advisory lock on (project, group).
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from buildyard.store.serverstate import run_queue

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from buildyard.server.queue import Entry
    from buildyard.spec.models import Pipeline

#: Seconds between two looks of a pending run at its group.
POLL = 0.25
#: A cancelled member's message starts with this (its runner keeps it as the final message).
SUPERSEDED = "superseded by "


def _placeholder(entry_id: str) -> str:
    """The message of a member superseded by ``entry_id`` before that run has a number."""
    return f"{SUPERSEDED}the run of queue entry {entry_id[:12]}"


def group_of(pipeline: Pipeline, entry: Entry) -> tuple[str, bool] | None:
    """The pipeline's concurrency group for ``entry`` (interpolated) and ``cancel_in_progress``."""
    from buildyard.spec import expr  # noqa: PLC0415

    spec = pipeline.concurrency
    if spec is None:
        return None
    tag = str(entry.options.get("tag") or "")
    context: dict[str, Any] = {
        "event": entry.event,
        "branch": entry.branch,
        "tag": tag,
        "ref": f"refs/tags/{tag}" if tag else f"refs/heads/{entry.branch}" if entry.branch else "",
        "sha": entry.sha,
        "vars": {**pipeline.variables, **entry.variables},
        "env": {},
        "matrix": {},
    }
    group = expr.interpolate(spec.group, context).strip()[:400]
    return (group, spec.cancel_in_progress) if group else None


class RunGroups:
    """Concurrency groups of queue entries (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _lock(self, conn: Connection, project: str, group: str) -> None:
        if conn.dialect.name == "postgresql":
            key = int.from_bytes(
                hashlib.sha256(f"{project}\0{group}".encode()).digest()[:8], "big", signed=True
            )
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    def _members(self, conn: Connection, entry: Entry, group: str) -> tuple[list[Any], list[Any]]:
        """(executing, pending) other members of ``group`` in ``entry``'s project."""
        rows = conn.execute(
            sa.select(run_queue.c.id, run_queue.c.status, run_queue.c.run_id).where(
                run_queue.c.project == entry.project,
                run_queue.c.concurrency_group == group,
                run_queue.c.id != entry.id,
                run_queue.c.status.in_(("running", "cancelling", "waiting", "resuming")),
            )
        ).all()
        executing = [r for r in rows if r.status != "waiting" or r.run_id is not None]
        pending = [r for r in rows if r.status == "waiting" and r.run_id is None]
        return executing, pending

    def _supersede(self, conn: Connection, ids: list[str], message: str) -> None:
        if ids:
            conn.execute(
                sa.update(run_queue)
                .where(run_queue.c.id.in_(ids), run_queue.c.status.in_(("running", "waiting", "resuming")))
                .values(status="cancelling", message=message)
            )

    def enter(self, entry: Entry, group: str, cancel_in_progress: bool) -> bool:
        """Make ``entry`` a member of ``group``; whether it may start now (else it is pending)."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(run_queue).where(run_queue.c.id == entry.id).values(concurrency_group=group)
            )
            self._lock(conn, entry.project, group)
            executing, pending = self._members(conn, entry, group)
            if cancel_in_progress:
                self._supersede(conn, [r.id for r in executing + pending], _placeholder(entry.id))
                return True
            if not executing:
                return True
            self._supersede(
                conn,
                [r.id for r in pending],
                f"{SUPERSEDED}a newer pending run (queue entry {entry.id[:12]})",
            )
            conn.execute(
                sa.update(run_queue)
                .where(run_queue.c.id == entry.id, run_queue.c.status == "running")
                .values(
                    status="waiting",
                    message=f"pending: waiting for the run in progress in concurrency group '{group[:200]}'",
                )
            )
            return False

    def take_turn(self, entry: Entry, group: str) -> bool:
        """A pending ``entry`` takes the group when no member of ``group`` executes; whether it did.
        It becomes ``resuming``: the runner pool makes it ``running`` when a runner is free, as it
        does for a run going on after an approval (``--runners`` holds)."""
        with self.engine.connect() as conn:  # a read first: a wait of minutes writes nothing
            if self._members(conn, entry, group)[0]:
                return False
        with self.engine.begin() as conn:
            conn.execute(  # writes first: SQLite's write lock serialises two pending runs' turns
                sa.update(run_queue)
                .where(run_queue.c.id == entry.id, run_queue.c.status == "waiting")
                .values(enqueued_at=run_queue.c.enqueued_at)
            )
            self._lock(conn, entry.project, group)
            executing, _pending = self._members(conn, entry, group)
            if executing:
                return False
            done = conn.execute(
                sa.update(run_queue)
                .where(run_queue.c.id == entry.id, run_queue.c.status == "waiting")
                .values(status="resuming", message="")
            )
            return done.rowcount == 1

    def numbered(self, entry_id: str, number: int) -> None:
        """The run of ``entry_id`` has number ``number``: the members it superseded say so."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(run_queue)
                .where(run_queue.c.message == _placeholder(entry_id))
                .values(message=f"{SUPERSEDED}run {number}")
            )


def hold_group(
    engine: Engine, entry: Entry, pipeline: Pipeline | None, cancelled: threading.Event
) -> tuple[str, str] | None:
    """Before ``entry``'s run of ``pipeline`` starts: ``None`` when it may start (its group held, or
    none), else the final (status, message) of an entry cancelled while it waited for its turn."""
    from buildyard.server.queue import RunQueue  # noqa: PLC0415

    if pipeline is None:
        return None  # it does not load: the run itself reports it
    found = group_of(pipeline, entry)
    if found is None:
        return None
    group, cancel = found
    groups = RunGroups(engine)
    if groups.enter(entry, group, cancel):
        return None
    queue = RunQueue(engine)
    while True:
        current = queue.get(entry.id)
        if cancelled.is_set() or current.status not in ("waiting", "running"):
            return "cancelled", current.message if current.message.startswith(SUPERSEDED) else "cancelled"
        if current.status == "resuming" or groups.take_turn(entry, group):
            break
        time.sleep(POLL)
    while True:  # its turn: a runner takes it (resuming → running)
        current = queue.get(entry.id)
        if current.status == "running":
            return None
        if cancelled.is_set() or current.status != "resuming":
            return "cancelled", current.message if current.message.startswith(SUPERSEDED) else "cancelled"
        time.sleep(POLL)


def keeps_message(message: str) -> bool:
    """Whether a cancelled entry's stored ``message`` (a supersession) stays its final message."""
    return message.startswith(SUPERSEDED)
