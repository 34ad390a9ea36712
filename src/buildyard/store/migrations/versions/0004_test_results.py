"""Every test result of every run (test analytics: flaky, slowest, history).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create test_results."""
    op.create_table(
        "test_results",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("job_id", sa.String(300), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("suite", sa.Text, nullable=False),
        sa.Column("classname", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("duration", sa.Float, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_test_results_at", "test_results", ["at"])


def downgrade() -> None:
    """Drop test_results."""
    op.drop_table("test_results")
