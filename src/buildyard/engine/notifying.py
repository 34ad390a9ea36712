"""At a run's end: queue the notifications its ``notify:`` asks for and deliver them (``buildyard run``).

One call, ``notify_run_end(options, result)``, placed after the run's final status is recorded
(``queue_run_end`` only queues them: a server run, whose server sends them). The
messages go through the outbox in the run's history database, so one that cannot be delivered now is
retried by the next run (or the server's worker) and ends as a dead letter with its last error. The
wait for delivery is bounded (``deadline``): a dead receiver delays the command's exit by at most that,
never the run itself.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from buildyard.engine.runner import RunOptions, RunResult, open_history
from buildyard.engine.secrets import read_secrets_file
from buildyard.notify.decide import RunSummary
from buildyard.notify.hook import previous_status, queue_notifications
from buildyard.notify.outbox import Outbox, OutboxStatus
from buildyard.notify.worker import OutboxWorker

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

#: Longest a command waits for its notifications to be delivered.
DEFAULT_DEADLINE = 10.0


@dataclass(frozen=True, slots=True)
class NotifyReport:
    """What became of a run's notifications."""

    queued: int
    delivered: int
    pending: int


def queue_run_end(options: RunOptions, result: RunResult) -> list[int]:
    """Queue ``result``'s notifications in the outbox of the run's history, without sending them
    (the server's outbox worker sends them); the outbox ids queued."""
    run = result.run
    if not result.pipeline.notify or run is None:
        return []
    history = open_history(options)
    try:
        from buildyard.store.history import SqlHistory  # noqa: PLC0415

        if not isinstance(history, SqlHistory):  # the outbox is a table of an SQL history
            return []
        return _queue(history.engine, result)
    finally:
        history.close()


def _queue(engine: Engine, result: RunResult) -> list[int]:
    run = result.run
    assert run is not None  # noqa: S101 - checked by the callers
    summary = RunSummary(
        run_id=run.id,
        pipeline=run.pipeline,
        number=run.number,
        status=result.status,
        branch=run.branch,
        tag=run.tag,
        sha=run.sha,
        failed_jobs=tuple(j.id for j in result.jobs if j.status.is_failure),
        previous=previous_status(engine, pipeline=run.pipeline, branch=run.branch, before=run.created_at),
    )
    return queue_notifications(Outbox(engine), result.pipeline.notify, summary, result.masker.mask_text)


def notify_run_end(
    options: RunOptions, result: RunResult, *, deadline: float = DEFAULT_DEADLINE
) -> NotifyReport:
    """Queue and deliver ``result``'s notifications (nothing to do without ``notify:`` or a record)."""
    run = result.run
    if not result.pipeline.notify or run is None:
        return NotifyReport(0, 0, 0)
    history = open_history(options)
    try:
        from buildyard.store.history import SqlHistory  # noqa: PLC0415

        if not isinstance(history, SqlHistory):  # the outbox is a table of an SQL history
            return NotifyReport(0, 0, 0)
        outbox = Outbox(history.engine)
        ids = _queue(history.engine, result)
        file_values = read_secrets_file(options.secrets_file) if options.secrets_file else {}

        def secret(name: str) -> str | None:
            return file_values.get(name) or os.environ.get(name)

        worker = OutboxWorker(outbox, secret)
        try:
            worker.drain(time.monotonic() + deadline)
        finally:
            worker.stop()
        delivered = {e.id for e in outbox.entries(OutboxStatus.DELIVERED, limit=1000)}
        sent = sum(1 for i in ids if i in delivered)
        return NotifyReport(len(ids), sent, len(ids) - sent)
    finally:
        history.close()
