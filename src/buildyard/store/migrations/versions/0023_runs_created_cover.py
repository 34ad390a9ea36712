"""Runs: a covering index on ``created_at`` and the small columns the dashboard aggregates.

The dashboard's per-hour fingerprints, filter menus and run points read these columns of every run
of a range (10,000 runs for 30 days): through ``ix_runs_created`` each row was then fetched from the
table, whose rows carry the run's variables and paths. The new index answers them alone and, led by
``created_at``, replaces ``ix_runs_created``.

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

COLUMNS = ["created_at", "status", "finished_at", "duration_s", "queue_s", "branch", "event", "trigger"]


def upgrade() -> None:
    """Create the covering index, drop the one it replaces."""
    op.create_index("ix_runs_created_cover", "runs", COLUMNS)
    op.drop_index("ix_runs_created", table_name="runs")


def downgrade() -> None:
    """Back to the index on ``created_at`` alone."""
    op.create_index("ix_runs_created", "runs", ["created_at"])
    op.drop_index("ix_runs_created_cover", table_name="runs")
