"""Records of deployments per environment and approvals of deployment jobs, stored with the run history.

Every ``History`` backend stores them (``SqlHistory`` in the same database and migrations). A
deployment row is written when a deployment starts (``running``) and finished once with its result;
a rollback is a row of its own whose ``rollback_of`` names the deployment it replaced. An approval is
one row per job of a run: the first decision wins, so a job is never both approved and rejected.
"""

from __future__ import annotations

from dataclasses import dataclass

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
