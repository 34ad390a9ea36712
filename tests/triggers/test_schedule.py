"""Schedules fire once per due time: DST in real time zones (2027), catch-up, restarts, racing processes."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from buildyard.model import CatchUp
from buildyard.spec.models import OnSpec, ScheduleSpec
from buildyard.store.history import SqlHistory
from buildyard.triggers.events import TriggerEvent
from buildyard.triggers.schedule import ScheduleService, due_runs, due_times, schedule_key

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)  # type: ignore[misc]


def local(tz: str, *parts: int, fold: int = 0) -> dt.datetime:
    import zoneinfo

    # in UTC: PEP 495 makes a time of a repeated hour unequal to every time of another zone
    return dt.datetime(*parts, tzinfo=zoneinfo.ZoneInfo(tz), fold=fold).astimezone(dt.UTC)  # type: ignore[misc]


def every_tick(
    spec: ScheduleSpec, start: dt.datetime, end: dt.datetime, step_s: int = 30
) -> list[dt.datetime]:
    """Drive ``due_runs`` like a server ticking every ``step_s`` seconds (less than the grace, so no
    due time is missed); all due times fired."""
    fired: list[dt.datetime] = []
    last: dt.datetime | None = start
    now = start
    while now <= end:
        for due in due_runs(spec, last, now):
            fired.append(due)
            last = due
        now += dt.timedelta(seconds=step_s)
    return fired


def test_berlin_spring_forward_fires_the_missing_time_at_the_next_valid_minute() -> None:
    spec = ScheduleSpec(cron="30 2 * * *", timezone=BERLIN)
    fired = every_tick(spec, utc(2027, 3, 27, 0), utc(2027, 3, 29, 12), step_s=85)
    assert fired == [
        local(BERLIN, 2027, 3, 27, 2, 30),
        local(BERLIN, 2027, 3, 28, 3, 0),  # 02:30 does not exist that night: 03:00, once
        local(BERLIN, 2027, 3, 29, 2, 30),
    ]


def test_berlin_fall_back_fires_a_repeated_hour_once() -> None:
    daily = ScheduleSpec(cron="30 2 * * *", timezone=BERLIN)
    assert every_tick(daily, utc(2027, 10, 30, 12), utc(2027, 11, 1, 0), step_s=85) == [
        local(BERLIN, 2027, 10, 31, 2, 30)  # the first 02:30 (CEST) only
    ]
    half_hourly = ScheduleSpec(cron="*/30 2 * * *", timezone=BERLIN)
    fired = every_tick(half_hourly, utc(2027, 10, 30, 23), utc(2027, 10, 31, 3), step_s=85)
    assert fired == [local(BERLIN, 2027, 10, 31, 2, 0), local(BERLIN, 2027, 10, 31, 2, 30)]
    assert fired[-1] == utc(2027, 10, 31, 0, 30)  # 02:30 CEST, not 02:30 CET (01:30 UTC)


def test_new_york_2027_changes() -> None:
    spring = ScheduleSpec(cron="15 2 * * *", timezone=NEW_YORK)
    assert every_tick(spring, utc(2027, 3, 13, 12), utc(2027, 3, 15, 12), step_s=85) == [
        local(NEW_YORK, 2027, 3, 14, 3, 0),  # 02:15 EST->EDT does not exist on 14 March 2027
        local(NEW_YORK, 2027, 3, 15, 2, 15),
    ]
    fall = ScheduleSpec(cron="30 1 * * *", timezone=NEW_YORK)
    assert every_tick(fall, utc(2027, 11, 6, 12), utc(2027, 11, 8, 12), step_s=85) == [
        local(NEW_YORK, 2027, 11, 7, 1, 30),  # 01:30 happens twice on 7 November 2027: once
        local(NEW_YORK, 2027, 11, 8, 1, 30),
    ]
    assert due_times(fall, utc(2027, 11, 7, 5), utc(2027, 11, 7, 7)) == [local(NEW_YORK, 2027, 11, 7, 1, 30)]


def test_each_due_time_fires_once_with_a_fast_clock() -> None:
    spec = ScheduleSpec(cron="*/5 * * * *")
    fired = every_tick(spec, utc(2027, 1, 1), utc(2027, 1, 1, 1, 0, 10), step_s=7)
    assert fired == [utc(2027, 1, 1, 0, m) for m in range(5, 60, 5)] + [utc(2027, 1, 1, 1)]


def test_catch_up_latest_runs_once_for_missed_times_and_none_skips_them() -> None:
    latest = ScheduleSpec(cron="0 * * * *")
    last = utc(2027, 1, 1, 3)
    now = utc(2027, 1, 2, 9, 20)  # down for 30 hours
    assert due_runs(latest, last, now) == [utc(2027, 1, 2, 9)]
    none = ScheduleSpec(cron="0 * * * *", catch_up=CatchUp.NONE)
    assert due_runs(none, last, now) == []
    assert due_runs(none, last, utc(2027, 1, 2, 10, 0, 30)) == [utc(2027, 1, 2, 10)]  # on time again
    assert due_runs(latest, None, now) == []  # a new schedule does not run for the past


_OPEN: list[SqlHistory] = []


@pytest.fixture(autouse=True)
def _close_histories() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _engine(url: str) -> Engine:
    history = SqlHistory(url)
    _OPEN.append(history)
    return history.engine


def _service(url: str, queued: list[str], clock: list[dt.datetime]) -> ScheduleService:
    def enqueue(conn: Connection, event: TriggerEvent) -> str:
        queued.append(event.delivery_id)
        return f"run-{len(queued)}"

    return ScheduleService(_engine(url), enqueue, clock=lambda: clock[0])


def test_the_claim_survives_restarts_and_catches_up_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    on = OnSpec(schedule=[ScheduleSpec(cron="0 3 * * *", timezone=BERLIN)])
    queued: list[str] = []
    clock = [utc(2027, 6, 1, 1, 0, 20)]  # 03:00:20 CEST
    first = _service(url, queued, clock)
    fired = first.tick("shop", on)
    assert [f.due_at for f in fired] == [utc(2027, 6, 1, 1)]
    assert fired[0].run_id == "run-1"
    assert first.tick("shop", on) == []
    restarted = _service(url, queued, clock)  # a new process on the same database
    assert restarted.tick("shop", on) == []
    clock[0] = utc(2027, 6, 5, 12)  # down for four days: one run for the latest missed (5 June 03:00)
    assert [f.due_at for f in _service(url, queued, clock).tick("shop", on)] == [utc(2027, 6, 5, 1)]
    assert _service(url, queued, clock).tick("shop", on) == []
    assert len(queued) == 2
    with _engine(url).connect() as conn:
        rows = conn.execute(sa.text("SELECT schedule, run_id FROM schedule_fires ORDER BY due_at")).all()
    assert rows == [(schedule_key(on.schedule[0]), "run-1"), (schedule_key(on.schedule[0]), "run-2")]


def test_a_failed_enqueue_leaves_no_claim(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    on = OnSpec(schedule=[ScheduleSpec(cron="* * * * *")])
    clock = [utc(2027, 6, 1, 1, 0, 10)]

    def broken(conn: Connection, event: TriggerEvent) -> str:
        raise RuntimeError("queue down")

    with pytest.raises(RuntimeError):
        ScheduleService(_engine(url), broken, clock=lambda: clock[0]).tick("p", on)
    with _engine(url).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM schedule_fires")).scalar() == 0
    queued: list[str] = []
    fired = _service(url, queued, clock).tick("p", on)  # the due times (within the grace) fire after all
    assert [f.due_at for f in fired] == [utc(2027, 6, 1, 0, 59), utc(2027, 6, 1, 1)]


RACER = textwrap.dedent(
    """
    import datetime as dt, sys
    import sqlalchemy as sa
    from buildyard.spec.models import OnSpec, ScheduleSpec
    from buildyard.store.history import SqlHistory
    from buildyard.triggers.schedule import ScheduleService

    url, name = sys.argv[1], sys.argv[2]
    now = [dt.datetime(2027, 10, 30, 23, 0, 5, tzinfo=dt.UTC)]

    def enqueue(conn, event):
        sql = sa.text("INSERT INTO queued (owner, due) VALUES (:o, :d)")
        conn.execute(sql, {"o": name, "d": event.delivery_id})
        return name

    service = ScheduleService(SqlHistory(url).engine, enqueue, clock=lambda: now[0])
    on = OnSpec(schedule=[ScheduleSpec(cron="*/5 * * * *", timezone="Europe/Berlin")])
    while now[0] < dt.datetime(2027, 10, 31, 3, 0, 5, tzinfo=dt.UTC):  # across the repeated hour
        service.tick("p", on)
        now[0] += dt.timedelta(seconds=60)
    """
)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_processes_racing_on_one_database_fire_each_due_time_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'history.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = _engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE queued (owner VARCHAR(10), due VARCHAR(200) UNIQUE)"))
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    procs = [subprocess.Popen([sys.executable, str(script), url, f"p{i}"]) for i in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with engine.connect() as conn:
        owners = [r[0] for r in conn.execute(sa.text("SELECT owner FROM queued")).all()]
        claims = conn.execute(sa.text("SELECT count(*) FROM schedule_fires")).scalar()
    # 4 hours of */5 = 48 due times, minus the repeated hour's second pass (12): 36, each once
    assert len(owners) == claims == 48 - 12
