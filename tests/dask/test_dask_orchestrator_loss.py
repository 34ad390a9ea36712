"""Orchestrator and scheduler loss: agents kill the jobs of an orchestrator that died or froze within
the heartbeat timeout, and a run whose scheduler died fails with one clear line instead of hanging."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
HEARTBEAT = 3.0

pytestmark = pytest.mark.integration


def _orchestrator(root: Path, cluster: Any) -> subprocess.Popen[str]:
    target = f"dask://{cluster.address.removeprefix('tcp://')}"
    return subprocess.Popen(
        [sys.executable, "-m", "buildyard", "-C", str(root), "run", "--json", "--executor", target],
        env={**os.environ, "PYTHONPATH": str(SRC), "BUILDYARD_CLUSTER_HEARTBEAT": f"{HEARTBEAT:g}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _marked(token: str) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if token in " ".join(proc.info["cmdline"] or ()) and proc.pid != os.getpid():
                found.append(proc.pid)
    return found


def _hanging_job(make_project, tmp_path: Path) -> tuple[Path, Path, str]:
    marker = tmp_path / "started"
    token = f"{1000 + time.time_ns() % 1000}.{os.getpid()}"  # the job's own sleep (over 1000 s): its marker
    root = make_project(
        {"buildyard.yml": f"jobs:\n  hang:\n    script: [echo up >> {marker}; sleep {token}]\n"}
    )
    return root, marker, token


def _started(marker: Path, token: str) -> None:
    deadline = time.monotonic() + 60
    while not (marker.exists() and _marked(token)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _marked(token), "the job never started on an agent"


def _gone_within(token: str, seconds: float) -> float:
    """Seconds until no process of the job is left (fails after ``seconds``)."""
    start = time.monotonic()
    while _marked(token) and time.monotonic() - start < seconds:
        time.sleep(0.1)
    assert not _marked(token), f"the job still runs {seconds:g}s after its orchestrator was lost"
    return time.monotonic() - start


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSTOP])
def test_agents_kill_the_jobs_of_a_dead_or_frozen_orchestrator(make_project, cluster, tmp_path, how) -> None:
    root, marker, token = _hanging_job(make_project, tmp_path)
    run = _orchestrator(root, cluster)
    try:
        _started(marker, token)
        time.sleep(HEARTBEAT)  # the job has run longer than the timeout: only the loss may stop it
        if not _marked(token):
            run.kill()
            out, err = run.communicate()
            raise AssertionError(
                f"the job stopped before its orchestrator was lost: {out[-2000:]}{err[-2000:]}"
            )
        run.send_signal(how)
        # killed: its connection closes and Dask releases the task at once; frozen: its heartbeat stops
        _gone_within(token, HEARTBEAT + 5)
    finally:
        run.kill()
        run.communicate()


def test_a_lost_scheduler_fails_the_run_with_one_line(make_project, fresh_cluster, tmp_path) -> None:
    root, marker, token = _hanging_job(make_project, tmp_path)
    run = _orchestrator(root, fresh_cluster)
    try:
        _started(marker, token)
        fresh_cluster.kill(fresh_cluster.scheduler_pid)
        out, err = run.communicate(timeout=60)  # not hanging
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 1, err
    job = json.loads(out)["jobs"][0]
    assert job["status"] == "failed"
    assert job["message"].startswith("lost the Dask scheduler tcp://127.0.0.1:"), job["message"]
    assert "Traceback" not in err, err
    _gone_within(token, HEARTBEAT + 5)  # the agents heard from no one: they stopped the job too
