"""Rendering run progress: a live Rich view on a TTY, one line per event otherwise.

Renderers implement the engine's ``RunObserver`` hooks. They only present; every decision was made
by the engine.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from buildyard.engine.scheduler import JobFinished, JobResult, JobRetrying, JobStarted, JobWaiting, RunEvent
from buildyard.model import JobStatus
from buildyard.plan.build import Plan
from buildyard.spec.durations import format_duration
from buildyard.store.history import RunRecord

SYMBOLS = {
    JobStatus.SUCCESS: "✓",
    JobStatus.CACHED: "✓",
    JobStatus.FAILED: "✗",
    JobStatus.TIMED_OUT: "⏱",
    JobStatus.SKIPPED: "○",
    JobStatus.MANUAL: "⏸",
    JobStatus.CANCELLED: "⊘",
}
STYLES = {
    JobStatus.SUCCESS: "green",
    JobStatus.CACHED: "cyan",
    JobStatus.FAILED: "red",
    JobStatus.TIMED_OUT: "red",
    JobStatus.SKIPPED: "dim",
    JobStatus.MANUAL: "yellow",
    JobStatus.CANCELLED: "yellow",
}
TAIL_LINES = 20


def describe(result: JobResult) -> str:
    """``test[3.11] failed (exit 1) in 2.3s: step 'x' exited with code 1``."""
    parts = [f"{result.id} {result.status}"]
    if result.status == JobStatus.FAILED and result.exit_code not in (None, 0):
        parts.append(f"(exit {result.exit_code})")
    if result.allow_failure and result.status.is_failure:
        parts.append("[allowed]")
    if result.duration_s is not None:
        parts.append(f"in {format_duration(result.duration_s)}")
    if result.status == JobStatus.CACHED and result.saved_s:
        parts.append(f"(saved {format_duration(result.saved_s)})")
    if result.attempts > 1:
        parts.append(f"after {result.attempts} attempts")
    text = " ".join(parts)
    if result.message and result.status not in (JobStatus.SUCCESS, JobStatus.CACHED):
        text += f": {result.message}"
    return text


def log_tail(path: str, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a (masked) job log (its last 64 KiB, read from the end)."""
    from buildyard.engine.joblog import read_tail  # noqa: PLC0415 - only for failed jobs

    return read_tail(path, 64 * 1024).decode(errors="replace").splitlines()[-lines:]


class PlainRenderer:
    """One line per job start/finish, the tail of failed logs; ``stream`` prints all output prefixed."""

    def __init__(self, out: IO[str], *, stream: bool = False) -> None:
        self.out = out
        self.stream = stream
        self._partial: dict[str, str] = {}
        self.width = 0
        self.number = 0

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def started(self, run: RunRecord, plan: Plan) -> None:
        """Announce the run."""
        self.width = max((len(i) for i in plan.instances), default=0)
        self.number = run.number
        where = f" on {run.branch}" if run.branch else ""
        self._line(f"buildyard: run #{run.number} of {run.pipeline}{where} ({len(plan)} jobs)")

    def event(self, event: RunEvent) -> None:
        """Print one line for the event."""
        if isinstance(event, JobStarted):
            suffix = f" (attempt {event.attempt})" if event.attempt > 1 else ""
            self._line(f"▶ {event.job_id} started{suffix}")
        elif isinstance(event, JobWaiting):
            job = event.result.id
            self._line(
                f"⏸ {job} waiting for approval: buildyard approve {self.number} {job} "
                f"(or reject; timeout {format_duration(event.timeout)})"
            )
        elif isinstance(event, JobRetrying):
            self._line(
                f"↻ {event.job_id} {event.outcome.status} (attempt {event.attempt}), "
                f"retrying in {format_duration(event.delay)}"
            )
        elif isinstance(event, JobFinished):
            result = event.result
            self._flush_partial(result.id)
            self._line(f"{SYMBOLS.get(result.status, '?')} {describe(result)}")
            if result.status.is_failure and not self.stream and result.log_path:
                tail = log_tail(result.log_path)
                if tail:
                    self._line(f"  ┌ last {len(tail)} lines of {result.log_path}")
                    for line in tail:
                        self._line(f"  │ {line}")
                    self._line("  └")

    def warning(self, message: str) -> None:
        """Print a warning line."""
        self._line(f"! warning: {message}")

    def output(self, job_id: str, data: bytes) -> None:
        """With ``stream``, print complete output lines prefixed by the job name."""
        if not self.stream:
            return
        text = self._partial.pop(job_id, "") + data.decode(errors="replace")
        *lines, rest = text.split("\n")
        for line in lines:
            self._line(f"{job_id.ljust(self.width)} | {line}")
        if rest:
            self._partial[job_id] = rest

    def _flush_partial(self, job_id: str) -> None:
        rest = self._partial.pop(job_id, "")
        if rest:
            self._line(f"{job_id.ljust(self.width)} | {rest}")


class RichRenderer(PlainRenderer):
    """A live view: finished jobs scroll above, running jobs with elapsed time and overall progress below."""

    def __init__(self, *, stream: bool = False, console: Any = None) -> None:
        from rich.console import Console  # noqa: PLC0415 - only on a TTY
        from rich.live import Live  # noqa: PLC0415

        self.console = console if console is not None else Console()
        super().__init__(sys.stdout, stream=stream)
        self.running: dict[str, float] = {}  # set before Live: it renders once when created
        self.waiting: dict[str, float] = {}  # deployments waiting for approval
        self.total = 0
        self.done = 0
        self.live = Live(
            console=self.console, refresh_per_second=8, transient=True, get_renderable=self._render
        )

    def _line(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def started(self, run: RunRecord, plan: Plan) -> None:
        """Start the live display."""
        super().started(run, plan)
        self.total = len(plan)
        self.live.start()

    def event(self, event: RunEvent) -> None:
        """Update state and print finished jobs above the live area."""
        if isinstance(event, JobWaiting):
            self.waiting[event.result.id] = time.monotonic()
        if isinstance(event, JobStarted):
            self.waiting.pop(event.job_id, None)
            self.running[event.job_id] = time.monotonic()
            return
        if isinstance(event, JobFinished):
            self.waiting.pop(event.result.id, None)
            self.running.pop(event.result.id, None)
            self.done += 1
            result = event.result
            from rich.text import Text  # noqa: PLC0415

            symbol = (SYMBOLS.get(result.status, "?"), STYLES.get(result.status, ""))
            # One print per line: the live area is redrawn between prints.
            self.console.print(Text.assemble(symbol, " ", describe(result)), highlight=False)
            if result.status.is_failure and not self.stream and result.log_path:
                for line in log_tail(result.log_path):
                    self.console.print(f"  │ {line}", highlight=False, markup=False)
            return
        super().event(event)

    def _render(self) -> Any:
        from rich.progress_bar import ProgressBar  # noqa: PLC0415
        from rich.table import Table  # noqa: PLC0415

        table = Table.grid(padding=(0, 1))
        now = time.monotonic()
        for job_id, since in sorted(self.running.items(), key=lambda kv: kv[1]):
            table.add_row("[yellow]●[/]", job_id, f"[dim]{format_duration(now - since)}[/]")
        for job_id, since in sorted(self.waiting.items(), key=lambda kv: kv[1]):
            table.add_row(
                "[yellow]⏸[/]", job_id, f"[dim]waiting for approval {format_duration(now - since)}[/]"
            )
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=max(self.total, 1), completed=self.done, width=40),
            f"{self.done}/{self.total} jobs, {len(self.running)} running"
            + (f", {len(self.waiting)} waiting for approval" if self.waiting else ""),
        )
        outer = Table.grid()
        outer.add_row(table)
        outer.add_row(bar)
        return outer

    def close(self) -> None:
        """Stop the live display."""
        self.live.stop()
