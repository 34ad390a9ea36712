"""Job cache figures per job instance: status, key, time saved, miss reasons.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the cache columns to jobs."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("cache_status", sa.String(8), nullable=False, server_default="off"))
        batch.add_column(sa.Column("cache_key", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("saved_s", sa.Float, nullable=False, server_default="0"))
        batch.add_column(sa.Column("miss_reasons", sa.JSON, nullable=False, server_default="[]"))


def downgrade() -> None:
    """Drop the cache columns."""
    with op.batch_alter_table("jobs") as batch:
        for name in ("miss_reasons", "saved_s", "cache_key", "cache_status"):
            batch.drop_column(name)
