"""Deployments per environment and approvals of deployment jobs, stored next to the run history.

``DeploymentStore`` is mixed into ``SqlHistory`` (same engine, same migrations). A deployment row is
written when a deployment starts (``running``) and finished once with its result; a rollback is a row
of its own whose ``rollback_of`` names the deployment it replaced. An approval is one row per job of
a run: the first decision wins, so a job is never both approved and rejected.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from buildyard.errors import UsageError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

DEPLOYMENT_STATUSES = ("running", "success", "failed", "rolled_back")


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    """One deployment of a version of an artifact to an environment (``id`` 0 until stored)."""

    environment: str
    artifact: str
    version: str
    run_id: str
    job_id: str
    status: str
    started_at: float
    id: int = 0
    finished_at: float | None = None
    url: str = ""
    approved_by: str | None = None
    approved_at: float | None = None
    rollback_of: int | None = None
    #: Number of the run that made it (filled by reads, not stored).
    run_number: int | None = None

    @property
    def what(self) -> str:
        """``NAME@VERSION``, or ``commit <sha>`` for a script deployment (no artifact)."""
        return f"{self.artifact}@{self.version}" if self.artifact else f"commit {self.version[:12]}"


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """The decision on a deployment job of a run: ``approve`` or ``reject``."""

    run_id: str
    job_id: str
    decision: str
    actor: str
    comment: str = ""
    at: float = 0.0


#: The stored columns of ``DeploymentRecord`` (``run_number`` is joined in by reads).
_STORED = tuple(name for name in DeploymentRecord.__slots__ if name != "run_number")


def _deployment(row: Any) -> DeploymentRecord:
    data = row._asdict()
    return DeploymentRecord(**data)


class DeploymentStore:
    """Deployment and approval queries (needs ``self.engine``)."""

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine of the store this is mixed into."""
        raise NotImplementedError

    def start_deployment(self, record: DeploymentRecord) -> int:
        """Insert a deployment; return its id."""
        from buildyard.store.schema import deployments

        values = {k: getattr(record, k) for k in _STORED if k != "id"}
        with self.engine.begin() as conn:
            result = conn.execute(deployments.insert().values(**values))
            key = result.inserted_primary_key
            assert key is not None  # noqa: S101 - an insert always has a key
            return int(key[0])

    def finish_deployment(self, deployment_id: int, status: str) -> None:
        """Record how a deployment ended (one of ``DEPLOYMENT_STATUSES``).

        Only a running deployment ends, and only a failed one becomes ``rolled_back``: a late
        "failed" (a cancellation racing the end) never overwrites a recorded success.
        """
        from buildyard.store.schema import deployments

        if status not in DEPLOYMENT_STATUSES:
            raise ValueError(f"unknown deployment status {status!r}")
        allowed = ("running", "failed") if status == "rolled_back" else ("running",)
        with self.engine.begin() as conn:
            conn.execute(
                deployments.update()
                .where(deployments.c.id == deployment_id, deployments.c.status.in_(allowed))
                .values(status=status, finished_at=time.time())
            )

    def mark_rolled_back(self, deployment_id: int) -> None:
        """A successful deployment that a rollback replaced (no longer a rollback target)."""
        from buildyard.store.schema import deployments

        with self.engine.begin() as conn:
            conn.execute(
                deployments.update()
                .where(deployments.c.id == deployment_id, deployments.c.status == "success")
                .values(status="rolled_back")
            )

    def deployments(
        self, environment: str | None = None, *, run_id: str | None = None, limit: int = 50
    ) -> list[DeploymentRecord]:
        """Deployments, newest first (of one environment and/or one run)."""
        import sqlalchemy as sa

        from buildyard.store.schema import deployments, runs

        query = (
            sa.select(*deployments.columns, runs.c.number.label("run_number"))
            .join(runs, runs.c.id == deployments.c.run_id)
            .order_by(deployments.c.id.desc())
            .limit(limit)
        )
        if environment is not None:
            query = query.where(deployments.c.environment == environment)
        if run_id is not None:
            query = query.where(deployments.c.run_id == run_id)
        with self.engine.connect() as conn:
            return [_deployment(row) for row in conn.execute(query)]

    def last_good_version(
        self, environment: str, *, artifact: str, exclude: str | None = None, before: int | None = None
    ) -> DeploymentRecord | None:
        """The newest successful deployment of ``artifact`` to ``environment`` (older than deployment
        ``before``, of a version other than ``exclude``): what a rollback goes back to."""
        import sqlalchemy as sa

        from buildyard.store.schema import deployments, runs

        query = (
            sa.select(*deployments.columns, runs.c.number.label("run_number"))
            .join(runs, runs.c.id == deployments.c.run_id)
            .where(
                deployments.c.environment == environment,
                deployments.c.artifact == artifact,
                deployments.c.status == "success",
            )
            .order_by(deployments.c.id.desc())
            .limit(1)
        )
        if exclude is not None:
            query = query.where(deployments.c.version != exclude)
        if before is not None:
            query = query.where(deployments.c.id < before)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _deployment(row) if row is not None else None

    def decide(self, record: ApprovalRecord) -> None:
        """Record an approval decision; a second decision on the same job is refused."""
        from sqlalchemy.exc import IntegrityError

        from buildyard.store.schema import approvals

        try:
            with self.engine.begin() as conn:
                conn.execute(approvals.insert().values(**{k: getattr(record, k) for k in record.__slots__}))
        except IntegrityError:
            existing = self.approval(record.run_id, record.job_id)
            how = f"{existing.decision}d by {existing.actor}" if existing else "decided"
            raise UsageError(f"job '{record.job_id}' was already {how}") from None

    def approval(self, run_id: str, job_id: str) -> ApprovalRecord | None:
        """The decision on a job of a run, if any."""
        import sqlalchemy as sa

        from buildyard.store.schema import approvals

        query = sa.select(approvals).where(approvals.c.run_id == run_id, approvals.c.job_id == job_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return ApprovalRecord(**row._asdict()) if row is not None else None

    def gate_verdict(self, run_id: str) -> tuple[bool, str]:
        """Did run ``run_id`` pass its gates? ``(passed, detail)``; a run without gate results did not."""
        import sqlalchemy as sa

        from buildyard.store.schema import gate_results, runs

        with self.engine.connect() as conn:
            number = conn.execute(sa.select(runs.c.number).where(runs.c.id == run_id)).scalar()
            if number is None:
                return False, f"run {run_id[:12]} is not in this history"
            rows = conn.execute(
                sa.select(gate_results.c.gate, gate_results.c.status).where(gate_results.c.run_id == run_id)
            ).all()
        if not rows:
            return False, f"run #{number} evaluated no gates"
        failed = [gate for gate, status in rows if status == "failed"]
        if failed:
            return False, f"run #{number} failed gate(s): {', '.join(failed)}"
        return True, f"run #{number} passed {len(rows)} gate(s)"
