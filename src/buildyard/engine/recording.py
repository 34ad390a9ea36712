"""Recording a run in the history store: job rows, steps, gates and tests, written in batches.

``Recorder`` keeps the latest state of each job (events arrive on the loop thread); ``flush`` turns
what changed into rows every ``FLUSH_INTERVAL`` and hands them to the ``HistoryWriter``: one thread
that performs the writes in the order they were posted. The event loop never waits for the database,
so a locked or slow history (SQLite waits up to its busy timeout) cannot freeze scheduling, timeouts
or output streaming; the run ends by draining the writer (``Recorder.close``).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import urllib.parse
from collections.abc import Callable

from buildyard.engine.analytics import TestRows
from buildyard.engine.joblog import is_disk_full
from buildyard.engine.liveness import recover_abandoned
from buildyard.engine.masking import Masker
from buildyard.engine.options import RunOptions, home_dir
from buildyard.engine.scheduler import JobFinished, JobResult, JobStarted, JobWaiting, RunEvent, Scheduler
from buildyard.settings import load as load_settings
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
    url = options.db_url or load_settings(options.project_dir).db or default_url(home_dir(options))
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


class HistoryWriter:
    """One thread performing history writes in the order they are posted.

    A write that fails stops the writer: later writes are dropped, ``on_failure`` is called (from the
    writer thread) and ``drain`` returns the error. Started on the first write; ``drain`` waits for
    every write posted so far and stops the thread.
    """

    def __init__(self, on_failure: Callable[[BaseException], None] | None = None) -> None:
        #: Called on the writer thread with the error of the write that stopped it.
        self.on_failure = on_failure
        #: The first write that failed (the writer performs no write after it).
        self.error: BaseException | None = None
        self._queue: queue.SimpleQueue[tuple[Callable[[], None], bool] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def post(self, write: Callable[[], None]) -> None:
        """Perform ``write`` on the writer thread, after every write posted before it."""
        self._put(write, always=False)

    async def written(self) -> None:
        """Wait, without blocking the loop, until every write posted so far is done (or dropped)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle() -> None:
            if not done.done():
                done.set_result(None)

        def wake() -> None:  # on the writer thread
            loop.call_soon_threadsafe(settle)

        self._put(wake, always=True)
        await done

    def drain(self) -> BaseException | None:
        """Wait for every posted write and stop the thread; the error that stopped it, if any."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        return self.error

    def _put(self, call: Callable[[], None], *, always: bool) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="buildyard-history", daemon=True)
            self._thread.start()
        self._queue.put((call, always))

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            call, always = item
            if self.error is not None and not always:
                continue  # rows after a failed write would describe a run the history lacks
            try:
                call()
            except Exception as exc:  # noqa: BLE001 - handed to the run, which decides (Recorder.close)
                self.error = exc
                if self.on_failure is not None:
                    self.on_failure(exc)


class Recorder:
    """Buffers job updates and has them written to history in batches (every ``FLUSH_INTERVAL``)."""

    def __init__(
        self,
        history: History,
        run: RunRecord,
        masker: Masker,
        tree: str = "",
        *,
        writer: HistoryWriter | None = None,
    ) -> None:
        self.history = history
        self.run = run
        self.masker = masker
        self.tests = TestRows(history, run, tree)  # ``tree``: digest of the uncommitted changes tested
        self.pending: dict[str, JobResult] = {}
        self.first_start: float | None = None
        self.writer = writer or HistoryWriter()
        #: A history write that failed because the disk is full (the run stops, see ``runner``).
        self.failure: BaseException | None = None

    def event(self, event: RunEvent) -> None:
        """Remember the latest state of the job the event is about."""
        if isinstance(event, JobStarted):
            if self.first_start is None:
                self.first_start = event.at
        elif isinstance(event, JobFinished | JobWaiting):
            self.pending[event.result.id] = event.result

    def save_now(self, result: JobResult) -> None:
        """Write one job's row next (a job waiting for approval: ``approve`` looks for it)."""
        records = [self.job_record(result)]
        self.writer.post(lambda: self.history.save_jobs(records))

    def close(self, scheduler: Scheduler) -> BaseException | None:
        """The last flush of the run, then wait for every write: the disk-full failure that stopped
        recording, if any (any other failed write is raised: a bug, or a database gone)."""
        self.flush(scheduler)
        error = self.writer.drain()
        if error is None:
            return None
        if not is_disk_full(error):
            raise error
        return error

    def flush(self, scheduler: Scheduler) -> None:
        """Post the rows of buffered finished jobs and of the current state of running ones."""
        results = scheduler.results
        running = [r for r in results.values() if r.started_at is not None and not r.status.is_final]
        final = [r for r in self.pending.values() if r.status.is_final]  # copies made by the events
        job_rows = [self.job_record(r) for r in self.pending.values()] + [self.job_record(r) for r in running]
        self.pending.clear()
        if not job_rows:
            return
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
            for r in final
            for i, s in enumerate(r.steps)
        ]
        gate_rows = [
            GateRecord(
                self.run.id,
                r.id,
                i,
                g.result.gate,
                str(g.result.kind),
                str(g.result.status),
                self.masker.mask_text(g.result.reason),
                g.to_dict(),
            )
            for r in final
            for i, g in enumerate(r.gate_results)
        ]
        now = time.time()

        def write() -> None:
            self.history.save_jobs(job_rows)
            self.history.save_steps(step_rows)
            self.history.save_gates(gate_rows)
            self.history.save_tests(self.tests.rows(final, now))  # reads history: on this thread too

        self.writer.post(write)

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
            cache_status=str(r.cache_status),
            cache_key=r.cache_key,
            saved_s=r.saved_s,
            miss_reasons=[str(m) for m in r.miss_reasons],
        )
