"""The run queue, stored in the server's state database.

An entry goes ``queued → running → (success | failed | cancelled | abandoned | error)``, or
``queued → cancelled``; ``cancelling`` marks an executing entry whose process is being stopped.
While its run only waits for approvals an entry is ``waiting`` (it holds no runner); once a decision
lets a job start it asks for a runner again (``resuming``) and the runner pool makes it ``running``
when one is free (``running ⇄ waiting → resuming → running``).
``claim`` takes the oldest queued entry with one conditional ``UPDATE``, so two runners (or two
servers on one PostgreSQL database) never take the same entry. Every method is one short
transaction; nothing here starts processes (that is ``server.runners``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from buildyard.errors import NotFoundError, UsageError
from buildyard.store.serverstate import run_queue

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

#: Statuses of entries still in the queue or executing.
ACTIVE = ("queued", "running", "waiting", "resuming", "cancelling")
#: Statuses of entries whose process is alive (or was, when the server died).
EXECUTING = ("running", "waiting", "resuming", "cancelling")
#: Statuses of entries that hold a runner (counted against ``--runners``).
HOLDING = ("running", "cancelling")
#: Statuses of entries that wait for a runner (to start, or to go on after an approval).
WANTING = ("queued", "resuming")
MAX_VARIABLES = 100
_INSERT = sa.insert(run_queue)
MAX_VALUE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Entry:
    """One queue entry (``QueuedRun`` of the dashboard's contract, plus what runners need)."""

    id: str
    project: str
    status: str
    event: str
    branch: str
    sha: str
    requested_by: str
    enqueued_at: float
    started_at: float | None
    run_id: str | None
    variables: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    finished_at: float | None = None
    run_number: int | None = None
    pid: int | None = None
    pid_started: float | None = None
    runner: str = ""
    retry_of: str | None = None
    message: str = ""
    #: Set by ``server.concurrency`` and ``server.chains`` (triggers).
    concurrency_group: str | None = None
    triggered_by: str | None = None
    chain_depth: int = 0

    @property
    def queue_s(self) -> float | None:
        """Seconds from enqueued to started."""
        return None if self.started_at is None else self.started_at - self.enqueued_at


def _entry(row: Any) -> Entry:
    return Entry(**row._asdict())


def check_variables(variables: Mapping[str, Any]) -> dict[str, str]:
    """Variables of a trigger as strings, bounded (names like environment variables)."""
    if len(variables) > MAX_VARIABLES:
        raise UsageError(f"more than {MAX_VARIABLES} variables")
    out: dict[str, str] = {}
    for key, value in variables.items():
        if not isinstance(key, str) or not key or not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise UsageError(f"variable name '{key!s:.60}' must be letters, digits and '_'")
        text = value if isinstance(value, str) else str(value)
        if len(text.encode()) > MAX_VALUE_BYTES:
            raise UsageError(f"variable {key} is larger than {MAX_VALUE_BYTES // 1024} KiB")
        out[key] = text
    return out


class AlreadyFinished(UsageError):
    """The entry already reached a final status (cancel of a finished run)."""


class RunQueue:
    """Queue entries of every project (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def enqueue(
        self,
        *,
        project: str,
        event: str,
        branch: str,
        sha: str,
        requested_by: str,
        variables: Mapping[str, str] | None = None,
        options: Mapping[str, Any] | None = None,
        retry_of: str | None = None,
    ) -> Entry:
        """Add a queued entry; its enqueue time is now."""
        with self.engine.begin() as conn:
            entry_id = self.enqueue_in(
                conn,
                project=project,
                event=event,
                branch=branch,
                sha=sha,
                requested_by=requested_by,
                variables=variables,
                options=options,
                retry_of=retry_of,
            )
        return self.get(entry_id)

    def enqueue_in(
        self,
        conn: Connection,
        *,
        project: str,
        event: str,
        branch: str,
        sha: str,
        requested_by: str,
        variables: Mapping[str, str] | None = None,
        options: Mapping[str, Any] | None = None,
        retry_of: str | None = None,
        triggered_by: str | None = None,
        chain_depth: int = 0,
    ) -> str:
        """Insert a queued entry within the caller's transaction ``conn`` (a delivery or a schedule
        claim commits with it: exactly once); the entry's id. ``triggered_by``: the history run whose
        job pushed the commit, ``chain_depth`` its place in such a chain (``server.state``)."""
        values = {
            "id": uuid.uuid4().hex,
            "project": project,
            "status": "queued",
            "event": event,
            "branch": branch,
            "sha": sha,
            "variables": dict(variables or {}),
            "options": dict(options or {}),
            "requested_by": requested_by,
            "enqueued_at": time.time(),
            "retry_of": retry_of,
            "runner": "",
            "message": "",
            "triggered_by": triggered_by,
            "chain_depth": chain_depth,
        }
        conn.execute(_INSERT, values)  # prebuilt: a webhook's answer waits for this insert
        return str(values["id"])

    def get(self, entry_id: str) -> Entry:
        """The entry ``entry_id``."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(run_queue).where(run_queue.c.id == entry_id)).first()
        if row is None:
            raise NotFoundError(f"no queue entry '{entry_id}'")
        return _entry(row)

    def by_run(self, run_id: str) -> Entry | None:
        """The entry that executed history run ``run_id``."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(run_queue).where(run_queue.c.run_id == run_id)).first()
        return None if row is None else _entry(row)

    def list(
        self, *, project: str | None = None, statuses: Sequence[str] = ACTIVE, limit: int = 500
    ) -> list[Entry]:
        """Entries with one of ``statuses``, oldest first."""
        query = sa.select(run_queue).where(run_queue.c.status.in_(list(statuses)))
        if project is not None:
            query = query.where(run_queue.c.project == project)
        query = query.order_by(run_queue.c.enqueued_at).limit(limit)
        with self.engine.connect() as conn:
            return [_entry(row) for row in conn.execute(query)]

    def claim(self, runner: str, limits: Mapping[str, int] | None = None) -> Entry | None:
        """Take a queued entry for ``runner`` (status ``running``), or None.

        Fair between projects: the oldest queued entry of the project with the fewest runs in
        progress; a project with ``limits[project]`` runs in progress (``max_parallel_runs``,
        waiting ones included) is passed over until one ends.
        """
        limits = limits or {}
        for _ in range(5):
            with self.engine.begin() as conn:
                busy: dict[str, int] = {
                    r[0]: int(r[1])
                    for r in conn.execute(
                        sa.select(run_queue.c.project, sa.func.count())
                        .where(run_queue.c.status.in_(list(EXECUTING)))
                        .group_by(run_queue.c.project)
                    )
                }
                oldest = (
                    sa.select(run_queue.c.project, sa.func.min(run_queue.c.enqueued_at).label("at"))
                    .where(run_queue.c.status == "queued")
                    .group_by(run_queue.c.project)
                )
                candidates = [
                    (busy.get(r.project, 0), r.at, r.project)
                    for r in conn.execute(oldest)
                    if r.project not in limits or busy.get(r.project, 0) < limits[r.project]
                ]
                if not candidates:
                    return None
                project = min(candidates)[2]
                row = conn.execute(
                    sa.select(run_queue.c.id)
                    .where(run_queue.c.status == "queued", run_queue.c.project == project)
                    .order_by(run_queue.c.enqueued_at)
                    .limit(1)
                ).first()
                if row is None:
                    continue
                done = conn.execute(
                    sa.update(run_queue)
                    .where(run_queue.c.id == row.id, run_queue.c.status == "queued")
                    .values(status="running", runner=runner, started_at=time.time())
                )
            if done.rowcount == 1:
                return self.get(row.id)
        return None

    def resume(self, entry_id: str) -> bool:
        """Give a runner to an entry that asked for one back (``resuming → running``); whether it did."""
        return self.update(entry_id, only_if=("resuming",), status="running")

    def update(self, entry_id: str, *, only_if: Sequence[str] | None = None, **values: Any) -> bool:
        """Set ``values`` on the entry (only when its status is in ``only_if``); whether it changed."""
        query = sa.update(run_queue).where(run_queue.c.id == entry_id)
        if only_if is not None:
            query = query.where(run_queue.c.status.in_(list(only_if)))
        with self.engine.begin() as conn:
            return bool(conn.execute(query.values(**values)).rowcount)

    def cancel(self, entry_id: str) -> Entry:
        """Cancel a queued entry at once, or mark an executing one ``cancelling`` (its runner stops it)."""
        if self.update(
            entry_id,
            only_if=("queued",),
            status="cancelled",
            finished_at=time.time(),
            message="cancelled before it started",
        ):
            return self.get(entry_id)
        self.update(entry_id, only_if=("running", "waiting", "resuming"), status="cancelling")
        entry = self.get(entry_id)
        if entry.status != "cancelling":
            raise AlreadyFinished(f"run {entry_id[:12]} is already finished ({entry.status})")
        return entry

    def counts(self) -> dict[tuple[str, str], int]:
        """Active entries per (project, status)."""
        query = (
            sa.select(run_queue.c.project, run_queue.c.status, sa.func.count())
            .where(run_queue.c.status.in_(list(ACTIVE)))
            .group_by(run_queue.c.project, run_queue.c.status)
        )
        with self.engine.connect() as conn:
            return {(r[0], r[1]): int(r[2]) for r in conn.execute(query)}
