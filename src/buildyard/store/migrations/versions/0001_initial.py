"""Initial history schema: runs, jobs, steps.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create runs, jobs and steps."""
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("pipeline", sa.String(200), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("ref", sa.String(500), nullable=False),
        sa.Column("branch", sa.String(500), nullable=False),
        sa.Column("tag", sa.String(500), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("project_dir", sa.Text, nullable=False),
        sa.Column("pipeline_file", sa.Text, nullable=False),
        sa.Column("variables", sa.JSON, nullable=False),
        sa.Column("selected", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("duration_s", sa.Float),
        sa.Column("queue_s", sa.Float),
        sa.Column("jobs_total", sa.Integer, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.UniqueConstraint("pipeline", "number", name="uq_runs_pipeline_number"),
    )
    op.create_index("ix_runs_created", "runs", ["created_at"])
    op.create_table(
        "jobs",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("id", sa.String(300), primary_key=True),
        sa.Column("job", sa.String(200), nullable=False),
        sa.Column("stage", sa.String(100)),
        sa.Column("matrix", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("exit_code", sa.Integer),
        sa.Column("allow_failure", sa.Boolean, nullable=False),
        sa.Column("ready_at", sa.Float),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("duration_s", sa.Float),
        sa.Column("queue_s", sa.Float),
        sa.Column("cpu_seconds", sa.Float),
        sa.Column("peak_rss", sa.Integer),
        sa.Column("skip_reason", sa.String(32)),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("log_path", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_jobs_job", "jobs", ["job"])
    op.create_table(
        "steps",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("job_id", sa.String(300), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("exit_code", sa.Integer),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("duration_s", sa.Float),
        sa.ForeignKeyConstraint(["run_id", "job_id"], ["jobs.run_id", "jobs.id"], ondelete="CASCADE"),
    )


def downgrade() -> None:
    """Drop everything."""
    op.drop_table("steps")
    op.drop_table("jobs")
    op.drop_table("runs")
