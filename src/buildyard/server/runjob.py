"""The child process that executes one queued run: ``python -m buildyard.server.runjob``.

It reads its assignment as JSON on stdin (so secrets never appear in ``ps`` or in the process's
initial environment listing), then calls the engine's run entry point (``execute_run``, as
``buildyard run`` does) in the checkout it is given, recording into the project's history. It tells
the queue which history run it is, and gives its runner back while it only waits for approvals
(``RunnerLease``: it takes one again from the pool before a job starts). The engine handles SIGTERM
as Ctrl-C: a cancelled run ends its jobs' process trees and records ``cancelled``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buildyard.engine.scheduler import RunEvent
from buildyard.model import Event
from buildyard.plan.build import Plan
from buildyard.store.history import RunRecord

if TYPE_CHECKING:
    from buildyard.server.queue import RunQueue


class QueueObserver:
    """Reports the run's id to the queue entry."""

    def __init__(self, state_url: str, entry_id: str) -> None:
        from buildyard.server.queue import RunQueue  # noqa: PLC0415
        from buildyard.store.history import SqlHistory  # noqa: PLC0415

        self._store = SqlHistory(state_url)
        self.queue = RunQueue(self._store.engine)
        self.entry_id = entry_id

    def started(self, run: RunRecord, plan: Plan) -> None:
        """Record the history run this entry is."""
        del plan
        self.queue.update(self.entry_id, run_id=run.id, run_number=run.number)
        from buildyard.server.concurrency import RunGroups  # noqa: PLC0415

        RunGroups(self.queue.engine).numbered(self.entry_id, run.number)

    def event(self, event: RunEvent) -> None:
        """Events go to the history only."""

    def output(self, job_id: str, data: bytes) -> None:
        """Job output goes to the job logs only."""

    def warning(self, message: str) -> None:
        """Warnings go to this process's log (beside the queue entry)."""
        print(f"warning: {message}", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Close the state database."""
        self._store.close()


class RunnerLease:
    """The run's runner, as the scheduler's ``Lease``: released, the entry is ``waiting`` (it holds
    no runner); to acquire it again the entry asks (``resuming``) and waits until the runner pool
    grants one (``running``). The pool counts ``running`` and ``cancelling`` entries against
    ``--runners``, so an approved run never executes beside ``--runners`` others.

    The queue writes go through one thread, in order, never on the event loop.
    """

    def __init__(self, queue: RunQueue, entry_id: str, *, poll: float = 0.1) -> None:
        self.queue = queue
        self.entry_id = entry_id
        self.poll = poll
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="runner-lease")

    def release(self) -> None:
        """The entry is ``waiting``: its runner is free for another run."""
        self._writer.submit(self.queue.update, self.entry_id, only_if=("running",), status="waiting")

    async def acquire(self) -> None:
        """Ask for a runner (``resuming``) and wait until the pool grants one (``running``).

        An entry being cancelled keeps waiting: its process is stopped with SIGTERM.
        """
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            self._writer,
            functools.partial(self.queue.update, self.entry_id, only_if=("waiting",), status="resuming"),
        )
        while True:
            entry = await loop.run_in_executor(self._writer, self.queue.get, self.entry_id)
            if entry.status not in ("resuming", "cancelling"):
                return
            await asyncio.sleep(self.poll)

    def close(self) -> None:
        """Wait for the writes in flight."""
        self._writer.shutdown(wait=True)


def main() -> int:
    """Execute the run described on stdin; the run's exit code."""
    spec: dict[str, Any] = json.loads(sys.stdin.read())
    sys.stdin.close()
    os.environ.update(spec.get("secrets", {}))  # the engine reads declared secrets from the environment
    # the project's home, not the checkout's: artifacts, keys and caches outlive the checkout
    from buildyard.settings import BY_NAME  # noqa: PLC0415

    os.environ[BY_NAME["home"].env] = spec["home"]
    from buildyard.engine.runner import RunOptions, execute_run  # noqa: PLC0415

    options = spec["options"]
    run_options = RunOptions(
        project_dir=Path(spec["checkout"]),
        home=Path(spec["home"]),
        db_url=spec["history_url"],
        event=Event(spec["event"]),
        branch=spec["branch"] or None,
        tag=spec.get("tag") or None,
        variables=spec["variables"],
        select=tuple(options.get("select", ())),
        alone=bool(options.get("alone", False)),
        manual=frozenset(options.get("manual", ())),
        pins=dict(options.get("pins", {})),
        trigger=str(options.get("trigger", "server"))[:32],
        approver=spec["requested_by"],
        kill_grace=float(spec["kill_grace"]),
    )
    observer = QueueObserver(spec["state_url"], spec["entry_id"])
    lease = RunnerLease(observer.queue, spec["entry_id"])
    try:
        result = execute_run(run_options, observer, lease=lease)
    finally:
        lease.close()
        observer.close()
    from buildyard.model import RunStatus  # noqa: PLC0415
    from buildyard.store.history import SqlHistory  # noqa: PLC0415

    history = SqlHistory(spec["history_url"])
    try:
        run = result.run
        if run is not None and run.started_at is not None:
            # the run's queue time counts from when it was queued on the server, not from its start
            history.update_run(run.id, queue_s=max(0.0, run.started_at - float(spec["enqueued_at"])))
        rollback = options.get("rollback")
        if rollback:
            from buildyard.engine.deployctl import RollbackPlan, finish_rollback  # noqa: PLC0415

            finish_rollback(history, RollbackPlan(**rollback), succeeded=result.status == RunStatus.SUCCESS)
    finally:
        history.close()
    # queued here, sent by the server's outbox worker: a slow receiver never holds the runner
    from buildyard.engine.notifying import queue_run_end  # noqa: PLC0415

    try:
        queue_run_end(run_options, result)
    except Exception as exc:  # noqa: BLE001 - the run is recorded; a lost notification is only a warning
        print(f"warning: notifications not queued: {' '.join(str(exc).split())[:300]}", file=sys.stderr)
    return result.status.exit_code


def _print_error(message: str) -> None:
    """Each line as ``buildyard: error: ...``, control characters escaped (as the CLI prints them)."""
    from buildyard.termtext import safe_text  # noqa: PLC0415

    for line in message.split("\n"):
        sys.stderr.write(f"buildyard: error: {safe_text(line)}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    from buildyard.errors import InterruptedRun, UserError

    try:
        sys.exit(main())
    except UserError as exc:
        _print_error(str(exc))
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, InterruptedRun):
        _print_error("interrupted")
        sys.exit(130)
