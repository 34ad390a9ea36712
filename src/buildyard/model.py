"""Shared enums of the core: statuses, events, and their helpers.

Status values are ``StrEnum`` members so they serialize as plain strings (JSON, SQL) while code
compares enum members, never magic strings.
"""

from __future__ import annotations

from enum import StrEnum


class Event(StrEnum):
    """What triggered a run."""

    PUSH = "push"
    PULL_REQUEST = "pull_request"
    TAG = "tag"
    SCHEDULE = "schedule"
    MANUAL = "manual"


class InputType(StrEnum):
    """Type of a manual trigger's input (``on.manual.inputs.NAME.type``)."""

    STRING = "string"
    CHOICE = "choice"
    BOOLEAN = "boolean"


class CatchUp(StrEnum):
    """What a schedule does about due times missed while nothing was running."""

    LATEST = "latest"  # one run, for the latest missed due time
    NONE = "none"  # nothing: the next due time fires as usual


class NotifyWhen(StrEnum):
    """When a notification is sent (``notify: [{on: [...]}]``)."""

    FAILURE = "failure"  # the run failed
    FIXED = "fixed"  # the first success after a failure (of the same pipeline and branch)
    SUCCESS = "success"  # the run succeeded
    ALWAYS = "always"  # every finished run
    APPROVAL_NEEDED = "approval_needed"  # a deployment waits for an approval


class EnvMode(StrEnum):
    """Which variables of the machine's environment jobs see."""

    LOOSE = "loose"  # all of them
    STRICT = "strict"  # a base set (PATH, HOME, locale, …) plus ``pass_env``


class WorkspaceMode(StrEnum):
    """Where a job runs: in the project itself, or in a fresh copy of it (``engine.workspace``)."""

    SHARED = "shared"
    ISOLATED = "isolated"


class Redeploy(StrEnum):
    """Whether a deployment runs again when the environment already runs what it would deploy."""

    IF_CHANGED = "if_changed"  # skipped with a reason when the same version (or commit) is deployed
    ALWAYS = "always"


class When(StrEnum):
    """When a job runs relative to the outcome of its dependencies."""

    ON_SUCCESS = "on_success"
    ON_FAILURE = "on_failure"
    ALWAYS = "always"
    MANUAL = "manual"


class JobStatus(StrEnum):
    """Final (or current) status of one job instance."""

    PENDING = "pending"
    WAITING = "waiting"  # a deployment waiting for approval (holds no slot)
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    CACHED = "cached"
    CANCELLED = "cancelled"
    MANUAL = "manual"

    @property
    def is_final(self) -> bool:
        """True once the job will not change status again in this run."""
        return self not in (JobStatus.PENDING, JobStatus.WAITING, JobStatus.RUNNING)

    @property
    def is_ok(self) -> bool:
        """True for outcomes that satisfy ``on_success`` dependents."""
        return self in (JobStatus.SUCCESS, JobStatus.CACHED)

    @property
    def is_failure(self) -> bool:
        """True for outcomes that count as a failure of the job itself."""
        return self in (JobStatus.FAILED, JobStatus.TIMED_OUT)


class RunStatus(StrEnum):
    """Status of a whole run."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def exit_code(self) -> int:
        """The process exit code the CLI maps this status to."""
        return {RunStatus.SUCCESS: 0, RunStatus.FAILED: 1, RunStatus.CANCELLED: 130}.get(self, 1)


class SkipReason(StrEnum):
    """Why a job instance did not run."""

    CONDITION_FALSE = "condition_false"
    DEPENDENCY_FAILED = "dependency_failed"
    DEPENDENCY_SKIPPED = "dependency_skipped"
    MANUAL = "manual"
    NOT_ON_FAILURE = "not_on_failure"
    FAIL_FAST = "fail_fast"
    CONDITION_ERROR = "condition_error"
    REJECTED = "rejected"
    APPROVAL_TIMEOUT = "approval_timeout"


class Severity(StrEnum):
    """Qualitative severity of a vulnerability (CVSS bands); ``UNKNOWN`` when no score exists."""

    UNKNOWN = "unknown"
    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Order of seriousness; ``UNKNOWN`` ranks above ``CRITICAL`` so it never hides."""
        return _SEVERITY_RANK[self]

    @classmethod
    def from_score(cls, score: float) -> Severity:
        """The CVSS v3/v4 qualitative band of a base score."""
        if score == 0.0:
            return cls.NONE
        if score < 4.0:
            return cls.LOW
        if score < 7.0:
            return cls.MEDIUM
        if score < 9.0:
            return cls.HIGH
        return cls.CRITICAL

    def at_least(self, threshold: Severity) -> bool:
        """True if a finding of this severity meets ``threshold`` (unknown always does)."""
        if self is Severity.UNKNOWN:
            return True
        return self.rank >= threshold.rank

    @staticmethod
    def worst(values: list[Severity]) -> Severity:
        """The most serious known severity of ``values``; ``UNKNOWN`` only if none is known."""
        known = [v for v in values if v is not Severity.UNKNOWN]
        if not known:
            return Severity.UNKNOWN
        return max(known, key=lambda s: s.rank)


_SEVERITY_RANK = {
    Severity.NONE: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
    Severity.UNKNOWN: 5,
}
