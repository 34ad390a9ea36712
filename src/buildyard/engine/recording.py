"""Recording a run in the history store: job rows, steps, gates and tests, written in batches.

``Recorder`` keeps the latest state of each job (events arrive on the loop thread) and ``flush``
writes what changed every ``FLUSH_INTERVAL`` and at the end of the run.
"""

from __future__ import annotations

import os
import time
import urllib.parse

from buildyard.engine.analytics import TestRows
from buildyard.engine.joblog import is_disk_full
from buildyard.engine.liveness import recover_abandoned
from buildyard.engine.masking import Masker
from buildyard.engine.options import RunOptions, home_dir
from buildyard.engine.scheduler import JobFinished, JobResult, JobStarted, JobWaiting, RunEvent, Scheduler
from buildyard.store.history import (
    GateRecord,
    History,
    JobRecord,
    RunRecord,
    SqlHistory,
    StepRecord,
    default_url,
)

FLUSH_INTERVAL = 0.5


def open_history(options: RunOptions) -> SqlHistory:
    """The history store selected by ``--db``/``BUILDYARD_DB``, else SQLite under the home directory."""
    url = options.db_url or os.environ.get("BUILDYARD_DB") or default_url(home_dir(options))
    return SqlHistory(url)


def open_checked_history(options: RunOptions) -> SqlHistory:
    """``open_history`` with this home's abandoned runs closed first: what readers of the history see."""
    history = open_history(options)
    recover_abandoned(history, home_dir(options))
    return history


def history_where(history: SqlHistory) -> str:
    """The history database's file (SQLite) or a description of it, for messages."""
    url = history.url
    if url.startswith("sqlite:///"):
        return urllib.parse.unquote(url.removeprefix("sqlite:///").split("?")[0])
    return "the history database"


class Recorder:
    """Buffers job updates and writes them to history in batches (every ``FLUSH_INTERVAL``)."""

    def __init__(self, history: History, run: RunRecord, masker: Masker, tree: str = "") -> None:
        self.history = history
        self.run = run
        self.masker = masker
        self.tests = TestRows(history, run, tree)  # ``tree``: digest of the uncommitted changes tested
        self.pending: dict[str, JobResult] = {}
        self.first_start: float | None = None
        #: A history write that failed because the disk is full (the run stops, see ``_drive``).
        self.failure: BaseException | None = None

    def event(self, event: RunEvent) -> None:
        """Remember the latest state of the job the event is about."""
        if isinstance(event, JobStarted):
            if self.first_start is None:
                self.first_start = event.at
        elif isinstance(event, JobFinished | JobWaiting):
            self.pending[event.result.id] = event.result

    def save_now(self, result: JobResult) -> None:
        """Write one job's row at once (a job waiting for approval: ``approve`` looks for it)."""
        self.history.save_jobs([self.job_record(result)])

    def close(self, scheduler: Scheduler) -> BaseException | None:
        """The last flush of the run; the disk-full failure that stopped recording, if any."""
        if self.failure is not None:
            return self.failure
        try:
            self.flush(scheduler)
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            return exc
        return None

    def flush(self, scheduler: Scheduler) -> None:
        """Write buffered finished jobs and the current state of running ones."""
        results = scheduler.results
        running = [r for r in results.values() if r.started_at is not None and not r.status.is_final]
        batch = list(self.pending.values()) + running
        self.pending.clear()
        if not batch:
            return
        self.history.save_jobs([self.job_record(r) for r in batch])
        step_rows = [
            StepRecord(
                self.run.id,
                r.id,
                i,
                s.name,
                str(s.status),
                s.exit_code,
                s.started_at,
                s.finished_at,
                s.duration_s,
            )
            for r in batch
            if r.status.is_final
            for i, s in enumerate(r.steps)
        ]
        self.history.save_steps(step_rows)
        gate_rows = [
            GateRecord(
                self.run.id, r.id, i, g["gate"], g["kind"], g["status"], self.masker.mask_text(g["reason"]), g
            )
            for r in batch
            if r.status.is_final
            for i, g in enumerate(r.gate_results)
        ]
        self.history.save_gates(gate_rows)
        self.history.save_tests(self.tests.rows(batch, time.time()))

    def job_record(self, r: JobResult) -> JobRecord:
        """The history row of a job result (messages masked)."""
        queue = r.started_at - r.ready_at if r.started_at and r.ready_at else None
        return JobRecord(
            run_id=self.run.id,
            id=r.id,
            job=r.job,
            status=str(r.status),
            stage=r.stage,
            matrix=r.matrix,
            attempts=r.attempts,
            exit_code=r.exit_code,
            allow_failure=r.allow_failure,
            ready_at=r.ready_at,
            started_at=r.started_at,
            finished_at=r.finished_at,
            duration_s=r.duration_s,
            queue_s=queue,
            cpu_seconds=r.cpu_seconds,
            peak_rss=r.peak_rss,
            skip_reason=str(r.skip_reason) if r.skip_reason else None,
            message=self.masker.mask_text(r.message),
            log_path=r.log_path,
            cache_status=r.cache_status,
            cache_key=r.cache_key,
            saved_s=r.saved_s,
            miss_reasons=list(r.miss_reasons),
        )
