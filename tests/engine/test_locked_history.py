"""History writes leave the event loop: a locked database never freezes scheduling or timeouts."""

from __future__ import annotations

import json
import sys
import threading
import time

import pytest

from buildyard.engine.recording import HistoryWriter
from buildyard.store.history import SqlHistory, default_url

LOCK_S = 4.0

#: Holds an exclusive lock on the run's own history (another connection, like another process
#: writing a big batch) until the job ``slow`` is over, then releases it.
LOCKER = f"""\
import os, pathlib, sqlite3, time
db = pathlib.Path(os.environ["BUILDYARD_PROJECT_DIR"], ".buildyard", "buildyard.db")
conn = sqlite3.connect(db, isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
pathlib.Path("locked").touch()
time.sleep({LOCK_S})
conn.execute("COMMIT")
"""

PIPELINE = """\
name: locked
variables: {PY: "@PY@"}
jobs:
  locker:
    script: '"$PY" locker.py'
  wait:
    script: "while [ ! -f locked ]; do sleep 0.02; done"
  slow:
    needs: [wait]
    timeout: 1
    script: sleep 30
  after:
    needs: [slow]
    when: always
    script: echo after
""".replace("@PY@", sys.executable.replace("\\", "/"))


def test_a_locked_history_does_not_delay_a_timeout(cli, make_project) -> None:
    root = make_project(
        {"buildyard.yml": PIPELINE, "locker.py": LOCKER, ".gitignore": ".buildyard/\nlocked\n"}
    )
    began = time.monotonic()
    result = cli("-C", root, "run", "--json", "--no-cache", "-j", "4")
    took = time.monotonic() - began
    assert result.code == 1, result.err
    jobs = {j["name"]: j for j in json.loads(result.out)["jobs"]}
    assert jobs["slow"]["status"] == "timed_out"
    # started while the lock was held; timed out after 1 s, not when the lock was released
    assert jobs["slow"]["duration_s"] < 2.5, jobs["slow"]
    assert jobs["after"]["status"] == "success"
    assert took >= LOCK_S  # the run ended once its rows were written, after the lock was released
    run_id = json.loads(result.out)["run_id"]
    history = SqlHistory(default_url(root / ".buildyard"))
    try:
        run = history.get_run(run_id)
        rows = {j.id: j for j in history.jobs(run_id)}
    finally:
        history.close()
    assert {n: r.status for n, r in rows.items()} == {
        "locker": "success",
        "wait": "success",
        "slow": "timed_out",
        "after": "success",
    }
    assert run.status == "failed" and run.finished_at is not None


def test_the_writer_keeps_order_and_reports_the_failure_that_stopped_it() -> None:
    done: list[int] = []
    failures: list[BaseException] = []
    writer = HistoryWriter(on_failure=failures.append)
    gate = threading.Event()
    writer.post(gate.wait)
    for i in range(50):
        writer.post(lambda i=i: done.append(i))
    assert done == []  # posting never waits for the database
    gate.set()

    def broken() -> None:
        raise OSError(28, "No space left on device")

    writer.post(broken)
    writer.post(lambda: done.append(99))  # after a failed write nothing more is written
    error = writer.drain()
    assert done == list(range(50))
    assert isinstance(error, OSError) and failures == [error]


@pytest.mark.filterwarnings("error")
def test_written_waits_without_blocking_the_loop() -> None:
    import asyncio

    writer = HistoryWriter()
    gate = threading.Event()
    writer.post(gate.wait)

    async def main() -> float:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        asyncio.get_running_loop().call_later(0.3, gate.set)
        await writer.written()
        task.cancel()
        return ticks

    assert asyncio.run(main()) >= 10  # the loop kept running while the write waited
    assert writer.drain() is None
