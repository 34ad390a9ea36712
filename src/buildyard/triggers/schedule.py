"""Schedules: which due times of ``on.schedule`` fire, and a claim that fires each exactly once.

``due_runs(schedule, last_fired, now)`` is pure (the clock is a parameter):

- due times come from cronsim in the schedule's IANA time zone; a local time that does not exist
  (the hour skipped when clocks go forward) fires at the next valid minute, and a repeated hour
  (clocks going back) fires once: its second pass is dropped;
- a due time is *on time* when it is within ``grace`` seconds before ``now``; each on-time due time
  after ``last_fired`` fires;
- older due times after ``last_fired`` were *missed* (nothing was running): ``catch_up: latest`` fires
  the latest of them once (unless an on-time one fires anyway), ``catch_up: none`` fires none;
- with no ``last_fired`` (a new schedule, or a new database) only on-time due times fire.

``ScheduleService.tick`` is what a server calls every few seconds: for each schedule of a project it
computes the due runs, *claims* each in the ``schedule_fires`` table (primary key: project, schedule,
due time) and, in the same transaction, calls ``enqueue(conn, event)``. A due time claimed by another
process (or before a restart) is skipped; a crash before the commit leaves neither claim nor queued
run, so the next tick fires it: exactly once.
"""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from cronsim import CronSim
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from buildyard.model import CatchUp, Event
from buildyard.spec.models import OnSpec, ScheduleSpec
from buildyard.store.schema import schedule_fires
from buildyard.triggers.events import TriggerEvent

#: Seconds a due time may lie before ``now`` and still count as on time (a tick every 10-30 s fits).
DEFAULT_GRACE = 90.0
#: Most due times looked at per call (an every-minute cron over a long downtime stays cheap).
MAX_SCAN = 10_000

Clock = Callable[[], dt.datetime]
#: Queues a run for ``event`` inside the claim's transaction; returns the run's id (or ``None``).
Enqueue = Callable[[Connection, TriggerEvent], str | None]


def utcnow() -> dt.datetime:
    """The default clock: now, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def schedule_key(schedule: ScheduleSpec) -> str:
    """Identity of a schedule in the claims table: its expression and time zone (editing either
    makes a new schedule, which does not catch up on the old one's due times)."""
    return f"{' '.join(schedule.cron.split())} {schedule.timezone}"


def _is_second_pass(local: dt.datetime) -> bool:
    """Whether ``local`` is in the second pass of a repeated hour (clocks went back)."""
    if local.fold != 1:
        return False
    return local.replace(fold=0).utcoffset() != local.utcoffset()


def _iterate(schedule: ScheduleSpec, start: dt.datetime, *, reverse: bool) -> Iterator[dt.datetime]:
    tz = zoneinfo.ZoneInfo(schedule.timezone)
    local = start.astimezone(tz)
    for due in itertools.islice(CronSim(schedule.cron, local, reverse=reverse), MAX_SCAN):
        if not _is_second_pass(due):
            yield due.astimezone(dt.UTC)


def due_times(schedule: ScheduleSpec, after: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
    """Due times in ``(after, until]``, in UTC, oldest first (at most ``MAX_SCAN``)."""
    out: list[dt.datetime] = []
    for due in _iterate(schedule, after, reverse=False):
        if due > until:
            break
        if due > after:
            out.append(due)
    return out


def latest_due(schedule: ScheduleSpec, now: dt.datetime) -> dt.datetime | None:
    """The latest due time at or before ``now`` (UTC), or ``None`` within the scan limit."""
    # cronsim's reverse iteration starts strictly before its start: nudge past ``now``.
    for due in _iterate(schedule, now + dt.timedelta(seconds=1), reverse=True):
        if due <= now:
            return due
    return None


def due_runs(
    schedule: ScheduleSpec,
    last_fired: dt.datetime | None,
    now: dt.datetime,
    *,
    grace: float = DEFAULT_GRACE,
) -> list[dt.datetime]:
    """The due times (UTC, oldest first) that should fire now; see the module docstring."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    window = now - dt.timedelta(seconds=grace)
    start = window if last_fired is None or last_fired < window else last_fired
    on_time = due_times(schedule, start, now)
    if on_time or last_fired is None or schedule.catch_up is CatchUp.NONE:
        return on_time
    latest = latest_due(schedule, window)
    return [latest] if latest is not None and latest > last_fired else []


@dataclass(frozen=True, slots=True)
class Fired:
    """A due time this process claimed and queued."""

    project: str
    schedule: str
    due_at: dt.datetime
    run_id: str | None


class ScheduleService:
    """Fires the schedules of projects exactly once per due time, on a database shared by processes.

    ``enqueue(conn, event)`` queues the run within the claim's transaction (the server's run queue
    lives in the same database); ``clock`` is injectable for tests.
    """

    def __init__(
        self, engine: Engine, enqueue: Enqueue, *, clock: Clock = utcnow, grace: float = DEFAULT_GRACE
    ) -> None:
        self.engine = engine
        self.enqueue = enqueue
        self.clock = clock
        self.grace = grace

    def last_fired(self, project: str, schedule: str) -> dt.datetime | None:
        """The latest due time of ``schedule`` that fired (by any process), or ``None``."""
        query = sa.select(sa.func.max(schedule_fires.c.due_at)).where(
            schedule_fires.c.project == project, schedule_fires.c.schedule == schedule
        )
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return None if value is None else dt.datetime.fromtimestamp(float(value), dt.UTC)

    def tick(self, project: str, on: OnSpec | None) -> list[Fired]:
        """Claim and queue every due run of ``project``'s schedules now; what this call fired."""
        if on is None:
            return []
        now = self.clock()
        fired: list[Fired] = []
        seen: set[str] = set()
        for spec in on.schedule:
            key = schedule_key(spec)
            if key in seen:  # the same expression twice fires once
                continue
            seen.add(key)
            for due in due_runs(spec, self.last_fired(project, key), now, grace=self.grace):
                result = self._claim(project, key, due, now)
                if result is not None:
                    fired.append(result)
        return fired

    def _claim(self, project: str, key: str, due: dt.datetime, now: dt.datetime) -> Fired | None:
        event = TriggerEvent(Event.SCHEDULE, source="schedule", delivery_id=f"{key}@{due.isoformat()}")
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    schedule_fires.insert().values(
                        project=project, schedule=key, due_at=due.timestamp(), fired_at=now.timestamp()
                    )
                )
                run_id = self.enqueue(conn, event)
                if run_id is not None:
                    conn.execute(
                        schedule_fires.update()
                        .where(
                            schedule_fires.c.project == project,
                            schedule_fires.c.schedule == key,
                            schedule_fires.c.due_at == due.timestamp(),
                        )
                        .values(run_id=run_id)
                    )
        except IntegrityError:
            return None  # claimed by another process (or before a restart)
        return Fired(project, key, due, run_id)
