"""Gate results per run and job (the ``gates`` node for pipeline-level gates).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create gate_results."""
    op.create_table(
        "gate_results",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("job_id", sa.String(300), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("gate", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
    )


def downgrade() -> None:
    """Drop gate_results."""
    op.drop_table("gate_results")
