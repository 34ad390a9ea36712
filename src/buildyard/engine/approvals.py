"""Approvals of deployment jobs: recorded in advance (``run --manual``) or awaited from the history.

A deployment with ``approval: required`` waits until ``buildyard approve``/``reject`` (another
process) writes its decision to the history store; ``Approvals.wait`` polls for it. When
``approval_timeout`` passes first, a rejection by ``approval_timeout`` is recorded — the first decision
wins, so a late ``approve`` is refused instead of being silently ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import MutableMapping

from buildyard.errors import UserError
from buildyard.model import SkipReason
from buildyard.plan.build import JobInstance, Plan, Skip
from buildyard.spec.durations import format_duration
from buildyard.store.deployments import ApprovalRecord
from buildyard.store.history import History, RunRecord

#: Actor of the rejection recorded when a deployment's approval timed out.
TIMEOUT_ACTOR = "approval_timeout"


class Approvals:
    """The approvals of one run; ``approved`` receives ``job id → (approver, when)``."""

    def __init__(
        self,
        history: History,
        run: RunRecord,
        approved: MutableMapping[str, tuple[str, float]],
        *,
        poll: float = 0.5,
    ) -> None:
        self.history = history
        self.run = run
        self.approved = approved
        self.poll = poll

    def pre_approve(self, plan: Plan, actor: str) -> None:
        """Record the approval of the deployments selected with ``--manual`` (by ``actor``)."""
        now = time.time()
        for inst in plan.instances.values():
            env = inst.environment
            if env is None or env.approval != "required" or not inst.pre_approved:
                continue
            comment = f"buildyard run --manual {inst.job}"
            self.history.decide(ApprovalRecord(self.run.id, inst.id, "approve", actor, comment, now))
            self.approved[inst.id] = (actor, now)

    async def wait(self, inst: JobInstance) -> Skip | None:
        """``None`` once approved; a skip when rejected or when ``approval_timeout`` passed first."""
        env = inst.environment
        assert env is not None  # noqa: S101 - the scheduler only waits for deployments
        deadline = time.monotonic() + env.approval_timeout
        while True:
            decision = await asyncio.to_thread(self.history.approval, self.run.id, inst.id)
            if decision is not None:
                if decision.decision == "approve":
                    self.approved[inst.id] = (decision.actor, decision.at)
                    return None
                if decision.actor == TIMEOUT_ACTOR:
                    return Skip(SkipReason.APPROVAL_TIMEOUT, decision.comment)
                why = f": {decision.comment}" if decision.comment else ""
                return Skip(SkipReason.REJECTED, f"rejected by {decision.actor}{why}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                comment = f"no decision within approval_timeout {format_duration(env.approval_timeout)}"
                timeout = ApprovalRecord(self.run.id, inst.id, "reject", TIMEOUT_ACTOR, comment, time.time())
                with contextlib.suppress(UserError):  # someone decided meanwhile: read it next turn
                    await asyncio.to_thread(self.history.decide, timeout)
                continue
            await asyncio.sleep(min(self.poll, remaining))
