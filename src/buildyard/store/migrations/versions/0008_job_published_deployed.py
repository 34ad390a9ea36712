"""Jobs record what they published and deployed (``NAME@VERSION``, empty for none), and their order.

A run's view (``buildyard.views``) is built from the history alone, so ``run --json``, ``show --json``
and the REST API give the same object: these two values were only in the live run's memory.
``seq`` is a job's position in its run's plan: PostgreSQL has no insertion order (SQLite's ``rowid``),
so jobs were listed there by readiness. Rows from before have none (they keep the old order).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``jobs.published`` and ``jobs.deployed``."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("published", sa.String(300), nullable=False, server_default=""))
        batch.add_column(sa.Column("deployed", sa.String(300), nullable=False, server_default=""))
        batch.add_column(sa.Column("seq", sa.Integer))


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("seq")
        batch.drop_column("deployed")
        batch.drop_column("published")
