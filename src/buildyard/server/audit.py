"""The audit log: every state-changing action with who, what, which object, when, from where, result.

Entries are written by the API layer after the action (success or the error code). Details are short
texts chosen by the caller: never a secret value (``secrets set`` records the name only).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from buildyard.store.serverstate import audit

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

MAX_FIELD = 500


@dataclass(frozen=True)
class AuditEntry:
    """One recorded action."""

    id: int
    at: float
    actor: str
    action: str
    object: str
    address: str
    result: str
    detail: str


class AuditLog:
    """Append and read the audit log."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(
        self, *, actor: str, action: str, obj: str, address: str = "", result: str = "ok", detail: str = ""
    ) -> None:
        """Append one entry (fields are cut to a bounded length)."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(audit).values(
                    at=time.time(),
                    actor=actor[:100],
                    action=action[:64],
                    object=obj[:MAX_FIELD],
                    address=address[:64],
                    result=result[:32],
                    detail=detail[:MAX_FIELD],
                )
            )

    def entries(self, *, before: int | None = None, limit: int = 100) -> list[AuditEntry]:
        """Newest first; ``before`` is the cursor (an entry id)."""
        query = sa.select(audit).order_by(audit.c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(audit.c.id < before)
        with self.engine.connect() as conn:
            return [AuditEntry(**row._asdict()) for row in conn.execute(query)]
