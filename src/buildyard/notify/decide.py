"""Which notifications a finished run (or a waiting approval) triggers: pure."""

from __future__ import annotations

from dataclasses import dataclass

from buildyard.model import NotifyWhen, RunStatus
from buildyard.spec.filters import matches_any
from buildyard.spec.models import NotifySpec


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a notification says about a run (text already masked by the caller)."""

    run_id: str
    pipeline: str
    number: int
    status: RunStatus
    branch: str = ""
    tag: str = ""
    sha: str = ""
    url: str = ""  # link to the run (the server's page), empty for a CLI run
    failed_jobs: tuple[str, ...] = ()
    #: Status of the previous finished run of the same pipeline and branch (``None``: none).
    previous: RunStatus | None = None
    #: A deployment job waits for an approval (``approval_needed``); the run is still running.
    waiting_for: str = ""


def reasons(spec: NotifySpec, run: RunSummary) -> NotifyWhen | None:
    """The first of ``spec.on`` that ``run`` meets (``None``: no notification)."""
    if spec.branches is not None and not matches_any(spec.branches, run.branch):
        return None
    for when in spec.on:
        if when is NotifyWhen.APPROVAL_NEEDED:
            if run.waiting_for:
                return when
            continue
        if run.waiting_for or run.status is RunStatus.RUNNING:
            continue
        if when is NotifyWhen.ALWAYS:
            return when
        if when is NotifyWhen.FAILURE and run.status is RunStatus.FAILED:
            return when
        if when is NotifyWhen.SUCCESS and run.status is RunStatus.SUCCESS:
            return when
        if when is NotifyWhen.FIXED and run.status is RunStatus.SUCCESS and run.previous is RunStatus.FAILED:
            return when
    return None
