"""History of every run (runs, job instances, steps, gates, tests, deployments) behind one contract,
``store.history.History``: SQLite (stdlib driver) or PostgreSQL (SQLAlchemy), schema migrated by Alembic."""
