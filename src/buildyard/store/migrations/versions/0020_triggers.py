"""Triggers: ``schedule_fires`` (a claim per schedule due time) and ``deliveries`` (the webhook log).

- ``schedule_fires``: primary key ``(project, schedule, due_at)``; inserting it is how a process claims
  a due time, so a due time fires once across restarts and concurrent server processes;
- ``deliveries``: every webhook delivery with its verdict, headers (secrets removed) and the run it
  queued, and the parsed event (``trigger``, what a redelivery queues again); ``dedup_key`` is unique
  and set only for authenticated deliveries.

Revision ID: 0020
Revises: 0007 (the lead re-chains it after 0008-0019 at merge)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create both tables."""
    op.create_table(
        "schedule_fires",
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("schedule", sa.String(300), primary_key=True),
        sa.Column("due_at", sa.Float, primary_key=True),
        sa.Column("fired_at", sa.Float, nullable=False),
        sa.Column("run_id", sa.String(64)),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("delivery_id", sa.String(200), nullable=False),
        sa.Column("dedup_key", sa.String(240), unique=True),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("body_digest", sa.String(64), nullable=False),
        sa.Column("trigger", sa.JSON),
        sa.Column("run_id", sa.String(64)),
    )
    op.create_index("ix_deliveries_received", "deliveries", ["received_at"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_deliveries_received", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_table("schedule_fires")
