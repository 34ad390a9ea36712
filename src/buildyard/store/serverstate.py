"""Tables of the buildyard server's own state: run queue, users, API tokens, sessions, failed logins,
encrypted project secrets and the audit log.

They live on the history schema's ``MetaData`` (one Alembic chain, revisions 0010 and 0022): the server keeps
them in its state database (``serve --db``), a project's history database merely has them empty.
Secret values are stored only encrypted (``server.secrets``); tokens and sessions only as hashes.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, Index, Integer, LargeBinary, String, Table, Text

from buildyard.store.schema import metadata

run_queue = Table(
    "server_queue",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("event", String(32), nullable=False),
    Column("branch", String(500), nullable=False, default=""),
    Column("sha", String(64), nullable=False, default=""),
    Column("variables", JSON, nullable=False, default=dict),
    #: select, alone, manual, pins, rollback: what the run is asked beyond its trigger.
    Column("options", JSON, nullable=False, default=dict),
    Column("requested_by", String(200), nullable=False, default=""),
    Column("enqueued_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("run_id", String(32)),
    Column("run_number", Integer),
    Column("pid", Integer),
    Column("pid_started", Float),
    Column("runner", String(64), nullable=False, default=""),
    Column("retry_of", String(32)),
    Column("message", Text, nullable=False, default=""),
    #: The pipeline's ``concurrency.group`` (interpolated), set when a runner has loaded its commit.
    Column("concurrency_group", String(400)),
    #: The history run whose job pushed the commit this entry runs (``Buildyard-Run:`` trailer), and
    #: how many such runs precede it in the chain (0: not triggered by a run).
    Column("triggered_by", String(64)),
    Column("chain_depth", Integer, nullable=False, default=0, server_default="0"),
)
Index("ix_server_queue_group", run_queue.c.project, run_queue.c.concurrency_group)
Index("ix_server_queue_status", run_queue.c.status, run_queue.c.enqueued_at)
Index("ix_server_queue_project", run_queue.c.project, run_queue.c.enqueued_at)
Index("ix_server_queue_run", run_queue.c.run_id)

#: Refs of polled repositories already turned into push events: each (ref, sha) once, across restarts.
polled_refs = Table(
    "server_polled_refs",
    metadata,
    Column("project", String(200), primary_key=True),
    Column("ref", String(500), primary_key=True),
    Column("sha", String(64), primary_key=True),
    Column("seen_at", Float, nullable=False),
    Column("entry_id", String(32)),
)

users = Table(
    "server_users",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(300), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
)

tokens = Table(
    "server_tokens",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("role", String(16), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(100), nullable=False, default=""),
    Column("last_used_at", Float),
    Column("revoked_at", Float),
)

sessions = Table(
    "server_sessions",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("user", String(100), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

login_failures = Table(
    "server_login_failures",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("count", Integer, nullable=False, default=0),
    Column("last_at", Float, nullable=False),
)

secrets = Table(
    "server_secrets",
    metadata,
    Column("project", String(200), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("sealed", LargeBinary, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(100), nullable=False, default=""),
)

audit = Table(
    "server_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(64), nullable=False),
    Column("object", String(500), nullable=False, default=""),
    Column("address", String(64), nullable=False, default=""),
    Column("result", String(32), nullable=False),
    Column("detail", Text, nullable=False, default=""),
)
Index("ix_server_audit_at", audit.c.at)
