"""The server's state: run queue, users, tokens, sessions, failed logins, secrets, audit log.

See ``buildyard.store.serverstate``. A project's history database gets the tables empty; the server's
state database (``serve --db``) fills them.

Revision ID: 0010
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the server tables."""
    op.create_table(
        "server_queue",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("branch", sa.String(500), nullable=False, server_default=""),
        sa.Column("sha", sa.String(64), nullable=False, server_default=""),
        sa.Column("variables", sa.JSON, nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False, server_default=""),
        sa.Column("enqueued_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("run_id", sa.String(32)),
        sa.Column("run_number", sa.Integer),
        sa.Column("pid", sa.Integer),
        sa.Column("pid_started", sa.Float),
        sa.Column("runner", sa.String(64), nullable=False, server_default=""),
        sa.Column("retry_of", sa.String(32)),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_server_queue_status", "server_queue", ["status", "enqueued_at"])
    op.create_index("ix_server_queue_project", "server_queue", ["project", "enqueued_at"])
    op.create_index("ix_server_queue_run", "server_queue", ["run_id"])
    op.create_table(
        "server_users",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(300), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "server_tokens",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False, server_default=""),
        sa.Column("last_used_at", sa.Float),
        sa.Column("revoked_at", sa.Float),
    )
    op.create_table(
        "server_sessions",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("user", sa.String(100), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_table(
        "server_login_failures",
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_at", sa.Float, nullable=False),
    )
    op.create_table(
        "server_secrets",
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("sealed", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False, server_default=""),
    )
    op.create_table(
        "server_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object", sa.String(500), nullable=False, server_default=""),
        sa.Column("address", sa.String(64), nullable=False, server_default=""),
        sa.Column("result", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_server_audit_at", "server_audit", ["at"])


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_server_audit_at", table_name="server_audit")
    for table in (
        "server_audit",
        "server_secrets",
        "server_login_failures",
        "server_sessions",
        "server_tokens",
    ):
        op.drop_table(table)
    op.drop_table("server_users")
    op.drop_index("ix_server_queue_run", table_name="server_queue")
    op.drop_index("ix_server_queue_project", table_name="server_queue")
    op.drop_index("ix_server_queue_status", table_name="server_queue")
    op.drop_table("server_queue")
