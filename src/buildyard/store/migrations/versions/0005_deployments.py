"""Deployments per environment and the approvals of deployment jobs.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create deployments and approvals."""
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("artifact", sa.String(200), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("job_id", sa.String(300), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("url", sa.Text, nullable=False, server_default=""),
        sa.Column("approved_by", sa.String(200)),
        sa.Column("approved_at", sa.Float),
        sa.Column("rollback_of", sa.Integer),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_deployments_environment", "deployments", ["environment", "id"])
    op.create_index("ix_deployments_run", "deployments", ["run_id"])
    op.create_table(
        "approvals",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("job_id", sa.String(300), primary_key=True),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("comment", sa.Text, nullable=False, server_default=""),
        sa.Column("at", sa.Float, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
    )


def downgrade() -> None:
    """Drop deployments and approvals."""
    op.drop_table("approvals")
    op.drop_table("deployments")
