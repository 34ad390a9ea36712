"""Triggers: concurrency groups and trigger chains on queue entries; refs seen by repository polling.

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the queue entries' group and chain columns and the table of polled refs."""
    with op.batch_alter_table("server_queue") as batch:
        batch.add_column(sa.Column("concurrency_group", sa.String(400)))
        batch.add_column(sa.Column("triggered_by", sa.String(64)))
        batch.add_column(sa.Column("chain_depth", sa.Integer, nullable=False, server_default="0"))
    op.create_index("ix_server_queue_group", "server_queue", ["project", "concurrency_group"])
    op.create_table(
        "server_polled_refs",
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("ref", sa.String(500), primary_key=True),
        sa.Column("sha", sa.String(64), primary_key=True),
        sa.Column("seen_at", sa.Float, nullable=False),
        sa.Column("entry_id", sa.String(32)),
    )


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("server_polled_refs")
    op.drop_index("ix_server_queue_group", table_name="server_queue")
    with op.batch_alter_table("server_queue") as batch:
        batch.drop_column("chain_depth")
        batch.drop_column("triggered_by")
        batch.drop_column("concurrency_group")
