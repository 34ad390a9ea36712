"""The one call at a run's end (or when a deployment starts waiting): queue its notifications."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from buildyard.model import RunStatus
from buildyard.notify.decide import RunSummary
from buildyard.notify.messages import Mask, messages_for
from buildyard.notify.outbox import Outbox
from buildyard.spec.models import NotifySpec
from buildyard.store.schema import runs

_FINAL = (RunStatus.SUCCESS.value, RunStatus.FAILED.value, RunStatus.CANCELLED.value)


def previous_status(engine: Engine, *, pipeline: str, branch: str, before: float) -> RunStatus | None:
    """Status of the last finished run of ``pipeline`` on ``branch`` created before ``before``."""
    query = (
        sa.select(runs.c.status)
        .where(
            runs.c.pipeline == pipeline,
            runs.c.branch == branch,
            runs.c.created_at < before,
            runs.c.status.in_(_FINAL),
        )
        .order_by(runs.c.created_at.desc())
        .limit(1)
    )
    with engine.connect() as conn:
        value = conn.execute(query).scalar()
    return None if value is None else RunStatus(value)


def queue_notifications(outbox: Outbox, specs: list[NotifySpec], run: RunSummary, mask: Mask) -> list[int]:
    """Queue what ``notify:`` sends for ``run`` (once per run and reason); the outbox ids queued."""
    if not specs:
        return []
    return outbox.put(messages_for(specs, run, mask))
