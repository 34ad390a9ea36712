"""History of every run (runs, job instances, steps) in SQLite or PostgreSQL via SQLAlchemy Core."""
