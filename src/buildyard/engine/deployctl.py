"""Decisions on deployments that the CLI and the server share: approve/reject a waiting deployment
job, and choose what a rollback of an environment redeploys.

Both only read and write the history store; starting the rollback run is the caller's business
(the CLI runs it in-process, the server queues it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from buildyard.errors import NotFoundError, UsageError
from buildyard.store.deployments import ApprovalRecord
from buildyard.store.history import History, JobRecord, RunRecord


@dataclass(frozen=True)
class Decided:
    """A decision recorded on one waiting deployment job."""

    run: RunRecord
    job: JobRecord
    decision: str  # approve | reject
    actor: str


def decide(
    store: History,
    run: str,
    job: str,
    decision: str,
    actor: str,
    comment: str = "",
    *,
    pipeline: str | None = None,
) -> Decided:
    """Record ``decision`` (``approve``/``reject``) by ``actor`` on the job ``job`` (id or name) of ``run``.

    Raises ``NotFoundError`` for an unknown run or job, ``UsageError`` when the job is not waiting.
    """
    if decision not in ("approve", "reject"):
        raise UsageError(f"unknown decision '{decision}' (approve or reject)")
    record = store.get_run(run, pipeline=pipeline)
    jobs = store.jobs(record.id)
    matching = [j for j in jobs if j.id == job] or [j for j in jobs if j.job == job]
    if not matching:
        waiting = [j.id for j in jobs if j.status == "waiting"]
        hint = f" (waiting for approval: {', '.join(waiting)})" if waiting else ""
        raise NotFoundError(f"run #{record.number} has no job '{job}'{hint}")
    if len(matching) > 1:
        raise UsageError(f"'{job}' names several jobs of run #{record.number}; give one of them")
    target = matching[0]
    if target.status != "waiting" or record.status != "running":
        state = target.status if record.status == "running" else f"{target.status}, run {record.status}"
        raise UsageError(f"job '{target.id}' of run #{record.number} is not waiting for approval ({state})")
    store.decide(ApprovalRecord(record.id, target.id, decision, actor, comment, time.time()))
    return Decided(run=record, job=target, decision=decision, actor=actor)


@dataclass(frozen=True)
class RollbackPlan:
    """What a rollback of ``environment`` redeploys, through which job."""

    environment: str
    job_id: str
    artifact: str
    version: str
    #: The live version (None when nothing good is live) and its deployment row.
    live_version: str | None
    live_id: int | None

    @property
    def pin(self) -> str:
        """The artifact reference the deployment job is pinned to."""
        return f"{self.artifact}@{self.version}"


def plan_rollback(store: History, environment: str, version: str | None = None) -> RollbackPlan:
    """The previous good version of ``environment`` (or ``version``), and the job that deploys it."""
    recent = store.deployments(environment, limit=1)
    if not recent:
        raise NotFoundError(f"no deployments to {environment} recorded yet (see 'buildyard deploy history')")
    last = recent[0]
    if not last.artifact:
        raise UsageError(
            f"the last deployment to {environment} was a script deployment of commit "
            f"{last.version[:12]}: check out the commit to go back to and run "
            f"'buildyard run {last.job_id}'"
        )
    live = store.last_good_version(environment, artifact=last.artifact)
    current = live.version if live is not None else None
    if version is None:
        # after a failed deployment the last good version is what to restore; after a good one,
        # the one before it (versions already rolled back from are not "good" any more)
        exclude = current if last.status == "success" else None
        target = store.last_good_version(environment, artifact=last.artifact, exclude=exclude)
        if target is None:
            what = f"other than the live {current}" if current else "to go back to"
            raise NotFoundError(
                f"{environment} has no successful deployment of {last.artifact} {what} (give --to VERSION)"
            )
        version = target.version
    return RollbackPlan(
        environment=environment,
        job_id=last.job_id,
        artifact=last.artifact,
        version=version,
        live_version=current,
        live_id=live.id if live is not None else None,
    )


def finish_rollback(store: History, plan: RollbackPlan, *, succeeded: bool) -> None:
    """After the rollback run: mark the version rolled back from, so the next rollback goes further back."""
    if succeeded and plan.live_id is not None and plan.live_version != plan.version:
        store.mark_rolled_back(plan.live_id)
