"""The server's background threads besides the runners: schedules and the notification outbox.

- ``ScheduleTicker`` ticks ``triggers.schedule.ScheduleService`` for every project every ``interval``
  seconds, with ``on:`` read from the ``buildyard.yml`` at the head of the project's default branch;
  a due time is claimed and its run queued (event ``schedule``, at that head commit) in one
  transaction of the state database, so it fires once across restarts and server processes.
- ``NotifyWorkers`` runs one ``notify.worker.OutboxWorker`` per project on the project's history
  database (where runs queue their notifications), with the project's server secrets: a slow or dead
  receiver only occupies these threads, never a run or a request.

Both only print one line per problem (a project whose pipeline does not load does not stop the
others) and stop with ``stop()``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from buildyard.triggers.schedule import Clock, Fired, ScheduleService, utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from buildyard.notify.worker import OutboxWorker
    from buildyard.server.state import ServerState
    from buildyard.spec.models import OnSpec
    from buildyard.triggers.events import TriggerEvent

#: Seconds between two schedule ticks (due times within ``schedule.DEFAULT_GRACE`` still fire on time).
DEFAULT_INTERVAL = 20.0
#: Most (project, commit) → ``on:`` kept between ticks.
MAX_CACHED = 256


def _say(what: str, exc: BaseException) -> None:
    print(f"buildyard serve: {what}: {' '.join(str(exc).split())[:300]}", file=sys.stderr, flush=True)


class ScheduleTicker:
    """Fires the projects' schedules (see the module docstring)."""

    def __init__(
        self,
        state: ServerState,
        *,
        clock: Clock = utcnow,
        interval: float = DEFAULT_INTERVAL,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.state = state
        self.clock = clock
        self.interval = interval
        self.on_queued = on_queued
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on: dict[tuple[str, str], OnSpec | None] = {}
        self._last_error: dict[str, str] = {}

    def start(self) -> None:
        """Tick in a background thread until ``stop()``."""
        self._thread = threading.Thread(target=self._loop, name="schedules", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking (waits for a tick in progress)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.tick() and self.on_queued is not None:
                self.on_queued()
            self._stop.wait(self.interval)

    def tick(self) -> list[Fired]:
        """Claim and queue every due schedule of every project now; what fired."""
        fired: list[Fired] = []
        for config in self.state.config.projects:
            try:
                fired.extend(self._tick_project(config.name))
            except Exception as exc:  # noqa: BLE001 - one project's problem must not stop the others
                text = str(exc)
                if self._last_error.get(config.name) != text:  # once per distinct problem
                    _say(f"schedules of {config.name}", exc)
                self._last_error[config.name] = text
            else:
                self._last_error.pop(config.name, None)
        return fired

    def _tick_project(self, project: str) -> list[Fired]:
        from buildyard.errors import NotFoundError  # noqa: PLC0415

        _branch, sha = self.state.resolve(project, None, None)
        key = (project, sha)
        if key not in self._on:
            if len(self._on) > MAX_CACHED:  # one entry per project and head commit seen
                self._on.clear()
            try:
                self._on[key] = self.state.pipeline_at(project, sha).on
            except NotFoundError:
                self._on[key] = None  # no pipeline file on the default branch: nothing scheduled
        on = self._on[key]
        if on is None or not on.schedule:
            return []

        def enqueue(conn: Connection, event: TriggerEvent) -> str:
            return self.state.enqueue_event(conn, project, event, requested_by="schedule", sha=sha)

        return ScheduleService(self.state.engine, enqueue, clock=self.clock).tick(project, on)


class NotifyWorkers:
    """One outbox worker per project (see the module docstring)."""

    def __init__(self, state: ServerState, *, poll: float = 0.5) -> None:
        self.state = state
        self.poll = poll
        self.workers: list[OutboxWorker] = []

    def start(self) -> None:
        """Start sending what the projects' outboxes hold (and what runs add later)."""
        from buildyard.notify.outbox import Outbox  # noqa: PLC0415
        from buildyard.notify.worker import OutboxWorker  # noqa: PLC0415

        for config in self.state.config.projects:
            engine = self.state.sql_history(config.name).engine
            worker = OutboxWorker(Outbox(engine), self._secrets(config.name), poll=self.poll)
            worker.start()
            self.workers.append(worker)

    def _secrets(self, project: str) -> Callable[[str], str | None]:
        def secret(name: str) -> str | None:
            return self.state.secrets.values(project).get(name)

        return secret

    def stop(self) -> None:
        """Stop every worker (sends in flight finish; the rest stays in the outbox)."""
        for worker in self.workers:
            worker.stop()
        self.workers.clear()
