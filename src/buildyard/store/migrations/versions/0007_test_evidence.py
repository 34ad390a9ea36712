"""Test results say what content they tested and whether they are new evidence; per-run analytics
reads only the tests of the run.

- ``tree``: digest of the uncommitted changes the run tested (empty for a clean checkout): flakiness
  is judged per ``(sha, tree)``, so a test broken and fixed in the working tree is not flaky;
- ``report``: digest of the JUnit report the rows came from; ``restored``: the rows repeat a report
  already recorded (a cached job's restored report): kept for triage, left out of counts and flakiness;
- ``ix_test_results_name_at``: a run's flakiness query looks up its own tests by name within the window.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``tree``, ``report``, ``restored`` and the (name, at) index."""
    with op.batch_alter_table("test_results") as batch:
        batch.add_column(sa.Column("tree", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("report", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("restored", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_index("ix_test_results_name_at", "test_results", ["name", "at"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_test_results_name_at", table_name="test_results")
    with op.batch_alter_table("test_results") as batch:
        batch.drop_column("restored")
        batch.drop_column("report")
        batch.drop_column("tree")
