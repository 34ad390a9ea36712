"""The history schema, one SQLAlchemy Core ``MetaData`` shared by the repository and Alembic.

Timestamps are UTC epoch seconds (double precision): portable between SQLite and PostgreSQL,
cheap to compare and to chart. Changing a table means adding an Alembic revision.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("pipeline", String(200), nullable=False),
    Column("number", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("event", String(32), nullable=False),
    Column("ref", String(500), nullable=False, default=""),
    Column("branch", String(500), nullable=False, default=""),
    Column("tag", String(500), nullable=False, default=""),
    Column("sha", String(64), nullable=False, default=""),
    Column("trigger", String(32), nullable=False, default="cli"),
    Column("project_dir", Text, nullable=False, default=""),
    Column("pipeline_file", Text, nullable=False, default=""),
    Column("variables", JSON, nullable=False, default=dict),
    Column("selected", JSON, nullable=False, default=list),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("duration_s", Float),
    Column("queue_s", Float),
    Column("jobs_total", Integer, nullable=False, default=0),
    Column("message", Text, nullable=False, default=""),
    UniqueConstraint("pipeline", "number", name="uq_runs_pipeline_number"),
)
# covering: the dashboard's aggregates over a range of runs read the index only (migration 0023)
Index(
    "ix_runs_created_cover",
    runs.c.created_at,
    runs.c.status,
    runs.c.finished_at,
    runs.c.duration_s,
    runs.c.queue_s,
    runs.c.branch,
    runs.c.event,
    runs.c.trigger,
)

jobs = Table(
    "jobs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("id", String(300), primary_key=True),
    Column("job", String(200), nullable=False),
    Column("stage", String(100)),
    Column("matrix", JSON, nullable=False, default=dict),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("exit_code", Integer),
    Column("allow_failure", Boolean, nullable=False, default=False),
    Column("ready_at", Float),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("duration_s", Float),
    Column("queue_s", Float),
    Column("cpu_seconds", Float),
    Column("peak_rss", Integer),
    Column("skip_reason", String(32)),
    Column("message", Text, nullable=False, default=""),
    Column("log_path", Text, nullable=False, default=""),
    Column("cache_status", String(8), nullable=False, default="off"),
    Column("cache_key", String(64), nullable=False, default=""),
    Column("saved_s", Float, nullable=False, default=0.0),
    Column("miss_reasons", JSON, nullable=False, default=list),
    Column("published", String(300), nullable=False, server_default=""),
    Column("deployed", String(300), nullable=False, server_default=""),
    Column("seq", Integer),  # position in the run's plan (None for rows from before revision 0008)
    ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
)

steps = Table(
    "steps",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("job_id", String(300), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("name", String(300), nullable=False),
    Column("status", String(16), nullable=False),
    Column("exit_code", Integer),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("duration_s", Float),
    ForeignKeyConstraint(["run_id", "job_id"], ["jobs.run_id", "jobs.id"], ondelete="CASCADE"),
)

gate_results = Table(
    "gate_results",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("job_id", String(300), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("gate", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("data", JSON, nullable=False),
    ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
)

test_results = Table(
    "test_results",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("job_id", String(300), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("suite", Text, nullable=False),
    Column("classname", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("duration", Float, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("sha", String(64), nullable=False),
    Column("at", Float, nullable=False),
    Column("tree", String(64), nullable=False, server_default=""),
    Column("report", String(64), nullable=False, server_default=""),
    Column("restored", Boolean, nullable=False, server_default=false()),
    ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
)
Index("ix_test_results_at", test_results.c.at)
Index("ix_test_results_report", test_results.c.report)

deployments = Table(
    "deployments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("environment", String(200), nullable=False),
    Column("artifact", String(200), nullable=False),
    Column("version", String(200), nullable=False),
    Column("run_id", String(32), nullable=False),
    Column("job_id", String(300), nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("url", Text, nullable=False, default=""),
    Column("approved_by", String(200)),
    Column("approved_at", Float),
    Column("rollback_of", Integer),
    ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
)
Index("ix_deployments_environment", deployments.c.environment, deployments.c.id)
Index("ix_deployments_run", deployments.c.run_id)

approvals = Table(
    "approvals",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("job_id", String(300), primary_key=True),
    Column("decision", String(16), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("at", Float, nullable=False),
    ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
)

# --- triggers (buildyard.triggers) ---------------------------------------------------------------

#: One row per schedule due time that fired: the primary key is the claim that makes a due time run
#: once across restarts and across processes sharing the database.
schedule_fires = Table(
    "schedule_fires",
    metadata,
    Column("project", String(200), primary_key=True),
    Column("schedule", String(300), primary_key=True),
    Column("due_at", Float, primary_key=True),  # UTC epoch seconds of the due time
    Column("fired_at", Float, nullable=False),
    Column("run_id", String(64)),
)

#: The webhook delivery log: every delivery received, with its verdict. ``dedup_key`` (source and
#: delivery id) is set only for authenticated deliveries, so a forged one cannot pre-empt a real one.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(16), nullable=False),
    Column("delivery_id", String(200), nullable=False, default=""),
    Column("dedup_key", String(240), unique=True),
    Column("project", String(200), nullable=False, default=""),
    Column("event", String(64), nullable=False, default=""),
    Column("received_at", Float, nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("headers", JSON, nullable=False, default=dict),
    Column("body_digest", String(64), nullable=False, default=""),
    Column("trigger", JSON),  # the parsed TriggerEvent (what a redelivery queues again)
    Column("run_id", String(64)),
)
Index("ix_deliveries_received", deliveries.c.received_at)

# --- notifications (buildyard.notify) ------------------------------------------------------------

#: The notification outbox: at least once, with backoff, across restarts; ``dedup_key`` makes a run's
#: notification queued once even when the run's end is reported twice. Secrets are never stored: a
#: message names the secrets its sender resolves when it sends.
notify_outbox = Table(
    "notify_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedup_key", String(64), unique=True),
    Column("kind", String(16), nullable=False),  # webhook | slack | email | commit_status
    Column("channel", JSON, nullable=False),  # the channel's settings (secret names, no values)
    Column("payload", JSON, nullable=False),  # masked
    Column("status", String(16), nullable=False),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("claimed_until", Float),
    Column("delivered_at", Float),
    Column("last_error", Text, nullable=False, default=""),
)
Index("ix_notify_outbox_due", notify_outbox.c.status, notify_outbox.c.next_attempt_at)
