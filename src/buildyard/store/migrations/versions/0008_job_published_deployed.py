"""Jobs record what they published and deployed (``NAME@VERSION``, empty for none).

A run's view (``buildyard.views``) is built from the history alone, so ``run --json``, ``show --json``
and the REST API give the same object: these two values were only in the live run's memory.

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


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("deployed")
        batch.drop_column("published")
