"""``FakeExecutor``: an ``Executor`` that runs nothing, with scripted outcomes and durations.

Lets scheduler tests assert ordering, parallelism and retry behaviour deterministically, without
processes. Each call records ``(job_id, attempt, start, end)`` on the loop's clock; the outcome's
times are ``clock``'s (a ``buildyard.testing.clock.VirtualClock`` with a virtual-time loop).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from buildyard.engine.request import JobOutcome, JobRequest, OutputSink
from buildyard.model import JobStatus

Script = Callable[[JobRequest], tuple[float, JobStatus, int | None]]


@dataclass
class FakeExecutor:
    """Sleeps ``duration`` then returns ``status``/``exit_code`` as ``script(request)`` says."""

    script: Script = field(default=lambda _r: (0.0, JobStatus.SUCCESS, 0))
    calls: list[tuple[str, int, float, float]] = field(default_factory=list)
    running: int = 0
    max_running: int = 0
    clock: Callable[[], float] = time.time

    async def execute(self, request: JobRequest, sink: OutputSink | None = None) -> JobOutcome:
        """Pretend to run ``request``."""
        duration, status, code = self.script(request)
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if sink is not None:
                sink(request.job_id, f"fake output of {request.job_id}\n".encode())
            await asyncio.sleep(duration)
        finally:
            self.running -= 1
            self.calls.append((request.job_id, request.attempt, start, loop.time()))
        now = self.clock()
        return JobOutcome(
            job_id=request.job_id,
            attempt=request.attempt,
            status=status,
            exit_code=code,
            started_at=now - duration,
            finished_at=now,
            duration_s=duration,
        )
