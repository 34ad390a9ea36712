"""The history contract: ``History``, what the engine and the faces need from a history store.

Backends: ``SqlHistory`` (``store/sqlhistory.py``: SQLite by default, PostgreSQL by URL) and the
in-memory ``buildyard.testing.MemoryHistory``; one contract suite (``tests/store/test_history_contract.py``)
holds them all to the same behaviour. Callers are typed against ``History``, never a backend; only the
code that opens a store (``open_history``) names one. Records are in ``store/records.py`` and
``store/deployments.py`` and re-exported here.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol

from buildyard.store.deployments import DEPLOYMENT_STATUSES, ApprovalRecord, DeploymentRecord
from buildyard.store.records import RUN_ID_LENGTH, GateRecord, JobRecord, RunRecord, StepRecord, TestRecord
from buildyard.store.sqlhistory import (
    FLAKINESS_ROWS_PER_TEST,
    HEAD_REVISION,
    JOB_FIXED_COLUMNS,
    SqlHistory,
    default_url,
    sqlite_path,
)


class History(Protocol):
    """What the engine and the faces (CLI, gates, analytics, deploy, server) need from a history store.

    Errors a user can act on (an unknown or ambiguous run, a second approval) are ``BuildyardError``s
    with one line each; ``get_run`` raises ``NotFoundError``, ``decide`` ``UsageError``.
    """

    #: Where the history is (a database URL; ``memory:`` for the fake), for messages.
    url: str

    # --- runs -------------------------------------------------------------------------------------

    def create_run(self, record: RunRecord) -> RunRecord:
        """Insert a run with the next number of its pipeline (1, 2, …); return the stored record."""
        ...

    def update_run(self, run_id: str, **values: Any) -> None:
        """Update fields of a run (``RunRecord`` field names; ``ValueError`` for others)."""
        ...

    def list_runs(self, *, pipeline: str | None = None, limit: int = 20) -> list[RunRecord]:
        """Newest runs first (of every pipeline, or of one)."""
        ...

    def get_run(self, ref: str | None, *, pipeline: str | None = None) -> RunRecord:
        """A run by number (``N`` or ``PIPELINE#N``), id or unique id prefix, or the latest when ``ref``
        is None, ``last`` or ``latest``. A number that several pipelines have is ambiguous."""
        ...

    def durations(self, pipeline: str, limit_runs: int = 5) -> dict[str, float]:
        """Mean successful duration per job instance over the last ``limit_runs`` finished runs
        (``success`` or ``failed``) of ``pipeline``: scheduling priorities."""
        ...

    def latest_run_id(self, *, pipeline: str, branch: str, status: str, before: float) -> str | None:
        """Id of the newest run of ``pipeline`` on ``branch`` with ``status`` created before ``before``."""
        ...

    # --- jobs and steps ---------------------------------------------------------------------------

    def save_jobs(self, records: Sequence[JobRecord], *, insert: bool = False) -> None:
        """Insert (``insert=True``) or update job instance rows.

        An update sets a job's results only: the key and what the plan fixed at insert (name, stage,
        matrix, ``allow_failure``, see ``JOB_FIXED_COLUMNS``) keep their inserted values.
        """
        ...

    def jobs(self, run_id: str) -> list[JobRecord]:
        """Job instances of a run, in planned order."""
        ...

    def save_steps(self, records: Sequence[StepRecord]) -> None:
        """Insert step rows, replacing earlier steps of the same jobs (a retried attempt)."""
        ...

    def steps(self, run_id: str, job_id: str | None = None) -> list[StepRecord]:
        """Steps of a run (optionally of one job), by job id then order."""
        ...

    # --- gates ------------------------------------------------------------------------------------

    def save_gates(self, records: Sequence[GateRecord]) -> None:
        """Insert gate results, replacing earlier ones of the same jobs."""
        ...

    def gates(self, run_id: str) -> list[GateRecord]:
        """Gate results of a run, by job id then order."""
        ...

    def latest_gate_data(
        self, *, pipeline: str, branch: str, gate: str, before: float
    ) -> dict[str, Any] | None:
        """The data of ``gate`` in the latest successful run of ``pipeline`` on ``branch`` created
        before ``before``: the baseline of coverage ``no_decrease`` and benchmark regressions."""
        ...

    def gate_verdict(self, run_id: str) -> tuple[bool, str]:
        """Did a run pass its gates? ``(passed, detail)``; a run without gate results did not."""
        ...

    # --- tests ------------------------------------------------------------------------------------

    def save_tests(self, records: Sequence[TestRecord]) -> None:
        """Insert test results, replacing earlier ones of the same jobs."""
        ...

    def tests_of_run(self, run_id: str) -> list[TestRecord]:
        """Test results of one run, by job id then order."""
        ...

    def tests_since(self, since: float, *, pipeline: str | None = None) -> list[TestRecord]:
        """Test executions at or after ``since`` (epoch seconds), oldest first, restored results left
        out; of every pipeline or of one."""
        ...

    def tests_for_flakiness(self, *, run_id: str, pipeline: str, since: float) -> list[TestRecord]:
        """Executions since ``since`` of the tests that run ``run_id`` recorded, in runs of ``pipeline``
        only, restored results left out, oldest first; at most ``FLAKINESS_ROWS_PER_TEST`` (the newest)
        of each test."""
        ...

    def recorded_reports(self, reports: Collection[str]) -> set[str]:
        """Which of the report digests ``reports`` are already recorded."""
        ...

    # --- deployments and approvals ----------------------------------------------------------------

    def start_deployment(self, record: DeploymentRecord) -> int:
        """Insert a deployment; return its id (increasing)."""
        ...

    def finish_deployment(self, deployment_id: int, status: str) -> None:
        """Record how a deployment ended: only a running one ends, only a failed one becomes
        ``rolled_back`` (``ValueError`` for a status outside ``DEPLOYMENT_STATUSES``)."""
        ...

    def mark_rolled_back(self, deployment_id: int) -> None:
        """A successful deployment that a rollback replaced (no longer a rollback target)."""
        ...

    def deployments(
        self, environment: str | None = None, *, run_id: str | None = None, limit: int = 50
    ) -> list[DeploymentRecord]:
        """Deployments, newest first, with their run's number (of one environment and/or run)."""
        ...

    def last_good_version(
        self, environment: str, *, artifact: str, exclude: str | None = None, before: int | None = None
    ) -> DeploymentRecord | None:
        """The newest successful deployment of ``artifact`` to ``environment`` (older than deployment
        ``before``, of another version than ``exclude``): the rollback target."""
        ...

    def decide(self, record: ApprovalRecord) -> None:
        """Record an approval decision; the first one wins (a second is a ``UsageError``)."""
        ...

    def approval(self, run_id: str, job_id: str) -> ApprovalRecord | None:
        """The decision on a job of a run, if any."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


__all__ = [
    "DEPLOYMENT_STATUSES",
    "FLAKINESS_ROWS_PER_TEST",
    "HEAD_REVISION",
    "JOB_FIXED_COLUMNS",
    "RUN_ID_LENGTH",
    "ApprovalRecord",
    "DeploymentRecord",
    "GateRecord",
    "History",
    "JobRecord",
    "RunRecord",
    "SqlHistory",
    "StepRecord",
    "TestRecord",
    "default_url",
    "sqlite_path",
]


def _conforms(store: SqlHistory) -> History:
    """``SqlHistory`` is a ``History`` (checked by mypy, which rejects this function otherwise)."""
    return store
