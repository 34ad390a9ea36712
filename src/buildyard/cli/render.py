"""Rendering run progress: a live Rich view on a TTY, one line per event otherwise.

Renderers implement the engine's ``RunObserver`` hooks. They only present; every decision was made
by the engine. Names that come from the pipeline file (job ids carry matrix values) are shown through
``safe_text``; job output (``--stream``, failed-log tails) through ``OutputFilter``, which keeps SGR
colours only, unless ``raw``. Carriage returns: each shown line is what a terminal would end up
showing (``last_overwrite``), so a progress bar prints as its final state and cannot overwrite the
job-name prefix.
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
from buildyard.termtext import OutputFilter, last_overwrite, safe_text

__all__ = ["OutputFilter", "PlainRenderer", "RichRenderer", "describe", "log_tail", "safe_text"]

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
#: At the end of a plain (CI) run, each failed job's log is shown again with this many lines (a test
#: runner's failure report is longer than the tail shown when the job ends) ...
RECAP_LINES = 100
#: ... for at most this many failed jobs (the others are named, with the command showing them).
RECAP_JOBS = 10
#: Longest partial output line held for a job: longer ones are shown in pieces of this size.
MAX_PARTIAL = 64 * 1024


def describe(result: JobResult) -> str:
    """``test[3.11] failed (exit 1) in 2.3s: step 'x' exited with code 1``."""
    parts = [f"{safe_text(result.id)} {result.status}"]
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
    if result.message and result.status != JobStatus.CACHED:  # a success may say why (not redeployed)
        text += f": {safe_text(result.message)}"
    return text


def log_tail(path: str, lines: int = TAIL_LINES, *, raw: bool = False) -> list[str]:
    """The last ``lines`` lines of a (masked) job log (its last 64 KiB, read from the end), made safe
    for a terminal unless ``raw``."""
    from buildyard.engine.joblog import read_tail  # noqa: PLC0415 - only for failed jobs

    show = OutputFilter(raw=raw)
    text = show.feed(read_tail(path, 64 * 1024)) + show.flush()
    if raw:
        return text.splitlines()[-lines:]
    shown = text.split("\n")
    if shown[-1] == "":
        shown.pop()
    return [last_overwrite(line) for line in shown[-lines:]]


class PlainRenderer:
    """One line per job start/finish, the tail of failed logs; ``stream`` prints all output prefixed.

    ``close`` ends the run's output with a recap of the failed jobs (not allowed to fail): a longer
    tail of each one's masked log, where a reader of a CI log looks first. Not with ``stream``,
    which printed every line already.
    """

    def __init__(self, out: IO[str], *, stream: bool = False, raw: bool = False) -> None:
        self.out = out
        self.stream = stream
        self.raw = raw
        self._filters: dict[str, OutputFilter] = {}  # per job: its stream's decoder and filter state
        self._partial: dict[str, str] = {}
        self.width = 0
        self.number = 0
        self._failed: list[JobResult] = []  # failures that fail the run, in finishing order

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def started(self, run: RunRecord, plan: Plan) -> None:
        """Announce the run."""
        self.width = max((len(i) for i in plan.instances), default=0)
        self.number = run.number
        where = f" on {safe_text(run.branch)}" if run.branch else ""
        self._line(f"buildyard: run #{run.number} of {safe_text(run.pipeline)}{where} ({len(plan)} jobs)")

    def event(self, event: RunEvent) -> None:
        """Print one line for the event."""
        if isinstance(event, JobStarted):
            suffix = f" (attempt {event.attempt})" if event.attempt > 1 else ""
            self._line(f"▶ {safe_text(event.job_id)} started{suffix}")
        elif isinstance(event, JobWaiting):
            job = safe_text(event.result.id)
            self._line(
                f"⏸ {job} waiting for approval: buildyard approve {self.number} {job} "
                f"(or reject; timeout {format_duration(event.timeout)})"
            )
        elif isinstance(event, JobRetrying):
            self._line(
                f"↻ {safe_text(event.job_id)} {event.outcome.status} (attempt {event.attempt}), "
                f"retrying in {format_duration(event.delay)}"
            )
        elif isinstance(event, JobFinished):
            result = event.result
            self._flush_partial(result.id)
            self._line(f"{SYMBOLS.get(result.status, '?')} {describe(result)}")
            if result.status.is_failure and not self.stream:
                if result.log_path:
                    tail = log_tail(result.log_path, raw=self.raw)
                    if tail:
                        self._line(f"  ┌ last {len(tail)} lines of {safe_text(result.log_path)}")
                        for line in tail:
                            self._line(f"  │ {line}")
                        self._line("  └")
                if not result.allow_failure:
                    self._failed.append(result)

    def close(self) -> None:
        """Print the recap of the failed jobs (once): a bounded tail of each one's masked log."""
        failed, self._failed = self._failed, []
        if not failed:
            return
        self._line("")
        self._line(
            f"{len(failed)} failed job{'s' if len(failed) > 1 else ''}: the end of each log "
            f"(all of it: buildyard logs {self.number} JOB)"
        )
        for result in failed[:RECAP_JOBS]:
            self._line(f"┌ {SYMBOLS.get(result.status, '?')} {describe(result)}")
            tail = log_tail(result.log_path, RECAP_LINES, raw=self.raw) if result.log_path else []
            if tail:
                self._line(f"│ last {len(tail)} lines of {safe_text(result.log_path)}:")
            for line in tail:
                self._line(f"│ {line}")
            self._line("└")
        if len(failed) > RECAP_JOBS:
            rest = ", ".join(safe_text(r.id) for r in failed[RECAP_JOBS:])
            self._line(
                f"… and {len(failed) - RECAP_JOBS} more failed jobs: {rest} (buildyard show {self.number})"
            )

    def warning(self, message: str) -> None:
        """Print a warning line."""
        self._line(f"! warning: {safe_text(message)}")

    def info(self, message: str) -> None:
        """Print an information line (a choice the run made for the user)."""
        self._line(f"i {safe_text(message)}")

    def output(self, job_id: str, data: bytes) -> None:
        """With ``stream``, print complete output lines prefixed by the job name."""
        if not self.stream:
            return
        show = self._filters.get(job_id)
        if show is None:
            show = self._filters[job_id] = OutputFilter(raw=self.raw)
        self._print_lines(job_id, show.feed(data))

    def _print_lines(self, job_id: str, text: str) -> None:
        *lines, rest = (self._partial.pop(job_id, "") + text).split("\n")
        while len(rest) > MAX_PARTIAL:  # no newline for long: show it in pieces, hold no more
            lines.append(rest[:MAX_PARTIAL])
            rest = rest[MAX_PARTIAL:]
        prefix = f"{safe_text(job_id).ljust(self.width)} | "
        for line in lines:
            self._line(prefix + (line if self.raw else last_overwrite(line)))
        if rest:
            self._partial[job_id] = rest

    def _flush_partial(self, job_id: str) -> None:
        show = self._filters.pop(job_id, None)
        if show is not None:
            self._print_lines(job_id, show.flush())
        rest = self._partial.pop(job_id, "")
        if rest:
            self._print_lines(job_id, rest + "\n")


class RichRenderer(PlainRenderer):
    """A live view: finished jobs scroll above, running jobs with elapsed time and overall progress below."""

    def __init__(self, *, stream: bool = False, raw: bool = False, console: Any = None) -> None:
        from rich.console import Console  # noqa: PLC0415 - only on a TTY
        from rich.live import Live  # noqa: PLC0415

        self.console = console if console is not None else Console()
        super().__init__(sys.stdout, stream=stream, raw=raw)
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
                for line in log_tail(result.log_path, raw=self.raw):
                    shown = Text(f"  │ {line}") if self.raw else Text.from_ansi(f"  │ {line}")
                    self.console.print(shown, highlight=False)
            return
        super().event(event)

    def _render(self) -> Any:
        from rich.progress_bar import ProgressBar  # noqa: PLC0415
        from rich.table import Table  # noqa: PLC0415
        from rich.text import Text  # noqa: PLC0415

        table = Table.grid(padding=(0, 1))
        now = time.monotonic()
        for job_id, since in sorted(self.running.items(), key=lambda kv: kv[1]):
            table.add_row("[yellow]●[/]", Text(safe_text(job_id)), f"[dim]{format_duration(now - since)}[/]")
        for job_id, since in sorted(self.waiting.items(), key=lambda kv: kv[1]):
            table.add_row(
                "[yellow]⏸[/]",
                Text(safe_text(job_id)),
                f"[dim]waiting for approval {format_duration(now - since)}[/]",
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
