"""kill -9 between a delivery (or a due schedule) and its queued run: after restart it runs exactly once."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from buildyard.spec.models import OnSpec, ScheduleSpec
from buildyard.store.history import SqlHistory
from buildyard.triggers.deliveries import DeliveryService
from buildyard.triggers.events import TriggerEvent
from buildyard.triggers.schedule import ScheduleService
from buildyard.triggers.webhooks import Source, Verdict

PAYLOAD = Path(__file__).parent / "payloads" / "github_push.json"
SECRET = b"s"
KILLED = textwrap.dedent(
    """
    import datetime as dt, json, os, signal, sys
    import sqlalchemy as sa
    from buildyard.spec.models import OnSpec, ScheduleSpec
    from buildyard.store.history import SqlHistory
    from buildyard.triggers.deliveries import DeliveryService
    from buildyard.triggers.schedule import ScheduleService
    from buildyard.triggers.webhooks import Source

    url, what, body_path, signature = sys.argv[1:5]

    def enqueue(conn, event):
        conn.execute(sa.text("INSERT INTO queued (what) VALUES (:w)"), {"w": what})
        os.kill(os.getpid(), signal.SIGKILL)  # the run is queued in the open transaction: die here

    engine = SqlHistory(url).engine
    if what == "delivery":
        headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-9", "X-Hub-Signature-256": signature}
        body = open(body_path, "rb").read()
        DeliveryService(engine, enqueue).receive(Source.GITHUB, "p", headers, body, b"s")
    else:
        clock = lambda: dt.datetime(2027, 3, 28, 1, 0, 30, tzinfo=dt.UTC)
        on = OnSpec(schedule=[ScheduleSpec(cron="30 2 * * *", timezone="Europe/Berlin")])
        ScheduleService(engine, enqueue, clock=clock).tick("p", on)
    """
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    history = SqlHistory(url)
    with history.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE queued (what VARCHAR(20))"))
    yield url, history.engine
    history.close()


def _enqueue(conn: Connection, event: TriggerEvent) -> str:
    conn.execute(sa.text("INSERT INTO queued (what) VALUES ('after')"))
    return "run-1"


def _kill(tmp_path: Path, url: str, what: str, signature: str = "") -> None:
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    proc = subprocess.run(
        [sys.executable, str(script), url, what, str(PAYLOAD), signature],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()


def _queued(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT what FROM queued")).all()]


def test_a_delivery_killed_before_commit_is_queued_once_when_redelivered(
    tmp_path: Path, engine: tuple[str, Engine]
) -> None:
    url, db = engine
    body = PAYLOAD.read_bytes()
    signature = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    _kill(tmp_path, url, "delivery", signature)
    assert _queued(db) == []  # neither the log row nor the run survived the kill
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-9", "X-Hub-Signature-256": signature}
    service = DeliveryService(db, _enqueue)
    assert (
        service.receive(Source.GITHUB, "p", headers, body, SECRET).verdict is Verdict.QUEUED
    )  # GitHub retries
    assert service.receive(Source.GITHUB, "p", headers, body, SECRET).verdict is Verdict.DUPLICATE
    assert _queued(db) == ["after"]
    assert json.loads(body)["after"] == service.recent()[-1].trigger.sha  # type: ignore[union-attr]


def test_a_schedule_killed_before_commit_fires_once_after_restart(
    tmp_path: Path, engine: tuple[str, Engine]
) -> None:
    import datetime as dt

    url, db = engine
    _kill(tmp_path, url, "schedule")
    assert _queued(db) == []
    clock = dt.datetime(2027, 3, 28, 1, 0, 40, tzinfo=dt.UTC)  # 03:00:40 CEST: 02:30 did not exist that night
    on = OnSpec(schedule=[ScheduleSpec(cron="30 2 * * *", timezone="Europe/Berlin")])
    service = ScheduleService(db, _enqueue, clock=lambda: clock)
    assert [f.due_at for f in service.tick("p", on)] == [dt.datetime(2027, 3, 28, 1, 0, tzinfo=dt.UTC)]
    assert service.tick("p", on) == []
    assert _queued(db) == ["after"]
