"""Runs whose buildyard process died before finishing them, found and closed.

A run holds an exclusive ``flock`` on ``<home>/runs/<run id>.lock`` from before it is recorded until
after its final status is written. A lock file left behind that nobody holds (the process was killed
with SIGKILL, the machine lost power…) marks an abandoned run: ``recover_abandoned`` records it as
``cancelled`` with the reason, cancels its unfinished jobs, fails its unfinished deployments and kills
the job processes it left behind (they carry its ``BUILDYARD_RUN_ID``). Only runs of this home are
judged: a run of another machine sharing a PostgreSQL history has no lock file here and is left alone.

The scanner takes the lock before it reads the run, and the owner writes the final status before it
releases the lock, so a run that ends while being scanned is never mistaken for an abandoned one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from buildyard.engine.watchdog import kill_marked
from buildyard.errors import NotFoundError
from buildyard.model import JobStatus, RunStatus
from buildyard.store.history import History, RunRecord

ABANDONED = "abandoned: the buildyard process running it ended without finishing it (killed?)"


def _lock_dir(home: Path) -> Path:
    return home / "runs"


class RunLock:
    """The lock a live run holds on its lock file (see the module docstring)."""

    def __init__(self, home: Path, run_id: str) -> None:
        directory = _lock_dir(home)
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{run_id}.lock"
        # Locked under a temporary name, then renamed into place: a scanner never sees it unlocked.
        # Close-on-exec (Python's default): the jobs never hold it.
        temporary = directory / f".{run_id}.tmp"
        self._fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        temporary.rename(self.path)

    def release(self) -> None:
        """Drop the lock file (call after the run's final status is recorded; idempotent)."""
        if self._fd >= 0:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self.abandon()

    def abandon(self) -> None:
        """Let go of the lock but keep the file: the run is left to ``recover_abandoned`` (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@dataclass(frozen=True, slots=True)
class Recovered:
    """An abandoned run that was closed, and how many processes it had left behind."""

    run: RunRecord
    killed: int


def recover_abandoned(history: History, home: Path) -> list[Recovered]:
    """Close every abandoned run of ``home`` (see the module docstring); return what was closed."""
    directory = _lock_dir(home)
    try:
        entries = [e for e in os.scandir(directory) if e.name.endswith((".lock", ".tmp"))]
    except FileNotFoundError:
        return []
    recovered = []
    stale = time.time() - STALE_TEMPORARY_S
    for entry in entries:
        if entry.name.endswith(".tmp") and _mtime(entry) > stale:
            continue  # a run between creating its lock file and locking it: not ours to judge yet
        try:
            fd = os.open(entry.path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # its run just ended (or its lock was just renamed into place)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # alive
            # a ``.tmp`` left unlocked: killed before its run was recorded; nothing to close
            closed = _close_run(history, entry.name[:-5]) if entry.name.endswith(".lock") else None
            if closed is not None:
                recovered.append(closed)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
        finally:
            os.close(fd)
    return recovered


#: A lock file still under its temporary name after this long was left by a run killed before it
#: was recorded; younger ones may be a live run's, created but not yet locked.
STALE_TEMPORARY_S = 600.0


def _mtime(entry: os.DirEntry[str]) -> float:
    try:
        return entry.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _close_run(history: History, run_id: str) -> Recovered | None:
    try:
        run = history.get_run(run_id)
    except NotFoundError:
        return None  # killed between taking the lock and recording the run
    if run.status != str(RunStatus.RUNNING):
        return None  # ended normally; only its lock file was left (killed while releasing it)
    killed = kill_marked(f"BUILDYARD_RUN_ID={run_id}")
    jobs = history.jobs(run_id)
    stamps = [t for j in jobs for t in (j.started_at, j.finished_at) if t is not None]
    last = max(stamps, default=run.created_at)
    history.save_jobs(
        [
            replace(j, status=str(JobStatus.CANCELLED), message=ABANDONED, finished_at=j.finished_at or last)
            for j in jobs
            if not JobStatus(j.status).is_final
        ]
    )
    for deployment in history.deployments(run_id=run_id):
        if deployment.status == "running":
            history.finish_deployment(deployment.id, "failed")
    history.update_run(
        run_id,
        status=str(RunStatus.CANCELLED),
        finished_at=last,
        duration_s=last - run.created_at,
        message=ABANDONED,
    )
    return Recovered(replace(run, status=str(RunStatus.CANCELLED), message=ABANDONED), killed)
