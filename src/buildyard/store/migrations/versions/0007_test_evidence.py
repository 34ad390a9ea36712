"""Test results say what content they tested and whether they are new evidence.

- ``tree``: digest of the uncommitted changes the run tested (empty for a clean checkout): flakiness
  is judged per ``(sha, tree)``, so a test broken and fixed in the working tree is not flaky;
- ``report``: digest of the JUnit report the rows came from; ``restored``: the rows repeat a report
  already recorded (a cached job's restored report): kept for triage, left out of counts and flakiness;
- ``ix_test_results_report``: finds an earlier recording of a report. The rows of one report share
  its digest, so a run's inserts touch about one leaf page per report (an index on the test name
  would cost a scattered page per test, as ``ix_jobs_job`` did, see 0006).

The per-run flakiness query needs no index: it goes from the pipeline's runs (unique
``(pipeline, number)``) to their rows by primary key.

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
    """Add ``tree``, ``report``, ``restored`` and the report index."""
    with op.batch_alter_table("test_results") as batch:
        batch.add_column(sa.Column("tree", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("report", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("restored", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_index("ix_test_results_report", "test_results", ["report"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_test_results_report", table_name="test_results")
    with op.batch_alter_table("test_results") as batch:
        batch.drop_column("restored")
        batch.drop_column("report")
        batch.drop_column("tree")
