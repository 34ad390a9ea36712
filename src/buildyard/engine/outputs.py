"""Declared outputs that a successful job did not produce: a warning, or with ``run --strict`` a failure.

``artifacts: paths`` promise files to the jobs that need them and to the cache; a pattern that matches
nothing after the job succeeded is almost always a wrong path (a ``working_directory`` forgotten, a
typo). The check sits just inside the job cache: a job restored from the cache is not checked again
(the cache stores what the job did produce; under ``--strict`` the failed job is not stored).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from buildyard.cache.hashing import list_inputs
from buildyard.cache.pathsafe import unmatched_patterns
from buildyard.engine.request import Executor, JobOutcome, JobRequest, OutputSink, log_note
from buildyard.model import JobStatus


def missing_outputs(project: Path, patterns: tuple[str, ...]) -> list[str]:
    """The positive ``patterns`` (project-relative) that match no file under ``project``."""
    try:
        found = list_inputs(project, list(patterns))
    except ValueError:
        return []  # a pattern the cache refuses is reported by the cache
    return unmatched_patterns(patterns, found)


class OutputCheckExecutor:
    """Checks a successful job's declared outputs exist; warns, or fails the job when ``strict``."""

    def __init__(
        self, inner: Executor, *, project: Path, warn: Callable[[str], None], strict: bool = False
    ) -> None:
        self.inner = inner
        self.project = project
        self.warn = warn
        self.strict = strict

    async def execute(self, request: JobRequest, sink: OutputSink | None = None) -> JobOutcome:
        """Run the job, then look for what it declared."""
        outcome = await self.inner.execute(request, sink)
        if outcome.status != JobStatus.SUCCESS or not request.output_globs:
            return outcome
        missing = await asyncio.to_thread(missing_outputs, self.project, request.output_globs)
        if not missing:
            return outcome
        what = ", ".join(repr(p) for p in missing)
        note = f"declared output {what} matched no file"
        if not self.strict:
            self.warn(f"job {request.job_id}: {note}")
            return outcome
        log_note(request, f"{note} (--strict)", sink)
        return replace(outcome, status=JobStatus.FAILED, exit_code=None, message=f"{note} (--strict)")
