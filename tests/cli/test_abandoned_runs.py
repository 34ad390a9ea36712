"""A run whose buildyard process is killed with SIGKILL is closed by the next command, not left running."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil

from buildyard.engine.liveness import ABANDONED, RunLock, recover_abandoned
from buildyard.engine.runner import FLUSH_INTERVAL
from buildyard.store.history import RunRecord, SqlHistory


def _wait_for(path: Path, count: int) -> None:
    deadline = time.monotonic() + 20
    while (not path.exists() or len(path.read_text().split()) < count) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists(), "the job never started"


def _start_run(root: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    return subprocess.Popen(
        [sys.executable, "-m", "buildyard", "-C", str(root), "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkilled_run_is_recorded_cancelled_and_its_jobs_killed(make_project, cli, tmp_path) -> None:
    pids = tmp_path / "pids"
    root = make_project(
        {
            "buildyard.yml": f"""\
jobs:
  quick: {{script: echo done}}
  long: {{needs: [quick], script: "sleep 60 & echo $! >> {pids}; echo $$ >> {pids}; wait"}}
  after: {{needs: [long], script: echo never}}
"""
        }
    )
    proc = _start_run(root)
    _wait_for(pids, 2)
    # job results reach the history in batches (every FLUSH_INTERVAL): let `quick`'s land first
    db = sqlite3.connect(root / ".buildyard" / "buildyard.db")
    deadline = time.monotonic() + 20 * FLUSH_INTERVAL
    while db.execute("select status from jobs where id = 'quick'").fetchone() != ("success",):
        assert time.monotonic() < deadline, "quick's result never reached the history"
        time.sleep(0.05)
    db.close()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=20)
    orphans = [psutil.Process(int(p)) for p in pids.read_text().split()]
    assert all(p.is_running() for p in orphans), "SIGKILL on buildyard leaves the job's processes"

    shown = cli("-C", root, "show", "1", "--json")
    assert shown.code == 0, shown.err
    data = json.loads(shown.out)
    assert data["status"] == "cancelled"
    assert data["message"] == ABANDONED
    assert data["finished_at"] >= data["created_at"]
    statuses = {j["id"]: (j["status"], j["message"]) for j in data["jobs"]}
    assert statuses["quick"] == ("success", "")
    assert statuses["long"] == ("cancelled", ABANDONED)
    assert statuses["after"] == ("cancelled", ABANDONED)
    for p in orphans:
        assert not p.is_running() or p.status() == psutil.STATUS_ZOMBIE, "the left-behind job survived"
    assert not list((root / ".buildyard" / "runs").iterdir()), "the lock file is cleaned up"

    # the next run says what it found only once, and runs normally
    again = cli("-C", root, "run", "quick")
    assert again.code == 0 and "abandoned" not in again.err


def test_next_run_reports_the_abandoned_run(make_project, cli, tmp_path) -> None:
    pids = tmp_path / "pids"
    root = make_project(
        {
            "buildyard.yml": f'jobs:\n  long: {{script: "echo $$ >> {pids}; sleep 60"}}\n'
            "  quick: {script: 'true'}\n"
        }
    )
    proc = _start_run(root)
    _wait_for(pids, 1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=20)
    result = cli("-C", root, "run", "--dry-run")  # a dry run records nothing and judges nothing
    assert result.code == 0 and "abandoned" not in result.err
    result = cli("-C", root, "run", "quick")
    assert result.code == 0, result.err
    warning = "run #1 of pipeline was abandoned by its buildyard process: recorded as cancelled"
    # the run's watchdog usually killed its job already; if not, this run did ("killed 1 process …")
    assert warning in result.out + result.err
    assert not psutil.pid_exists(int(pids.read_text())) or (
        psutil.Process(int(pids.read_text())).status() == psutil.STATUS_ZOMBIE
    )


def test_a_live_run_is_left_alone(make_project, cli, tmp_path) -> None:
    flag = tmp_path / "go"
    started = tmp_path / "started"
    root = make_project(
        {
            "buildyard.yml": f'jobs:\n  wait: {{script: "echo 1 > {started}; '
            f'while [ ! -e {flag} ]; do sleep 0.05; done"}}\n'
        }
    )
    proc = _start_run(root)
    _wait_for(started, 1)
    listed = cli("-C", root, "history", "--json")
    assert listed.code == 0 and json.loads(listed.out)[0]["status"] == "running"
    flag.write_text("")
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert json.loads(cli("-C", root, "history", "--json").out)[0]["status"] == "success"


def test_lock_protocol(tmp_path, history_url) -> None:
    """A held lock is alive; a lock let go of is abandoned; a released one leaves no file."""
    home = tmp_path / "home"
    history = SqlHistory(history_url)
    try:
        for run_id in ("a" * 32, "b" * 32, "c" * 32):
            history.create_run(
                RunRecord(id=run_id, pipeline="p", number=0, status="running", event="push", created_at=1.0)
            )
        held, dropped, finished = RunLock(home, "a" * 32), RunLock(home, "b" * 32), RunLock(home, "c" * 32)
        dropped.abandon()
        stale = home / "runs" / f".{'d' * 32}.tmp"  # killed before renaming its lock into place
        stale.write_text("")
        old = time.time() - 3600
        os.utime(stale, (old, old))
        young = home / "runs" / f".{'e' * 32}.tmp"  # a run that created its lock file but not locked it yet
        young.write_text("")
        history.update_run("c" * 32, status="success")
        finished.abandon()  # a run killed after recording its final status, before removing the file
        closed = recover_abandoned(history, home)
        assert [r.run.id for r in closed] == ["b" * 32]
        assert history.get_run("b" * 32).status == "cancelled"
        assert history.get_run("a" * 32).status == "running"
        assert history.get_run("c" * 32).status == "success"
        assert sorted(p.name for p in (home / "runs").iterdir()) == [f".{'e' * 32}.tmp", f"{'a' * 32}.lock"]
        young.unlink()
        held.release()
        assert not list((home / "runs").iterdir())
        assert recover_abandoned(history, home) == []
    finally:
        history.close()
