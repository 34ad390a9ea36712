"""The embedded history database through the stdlib ``sqlite3`` driver: a run's hot path.

``SqlHistory`` keeps SQLAlchemy Core for PostgreSQL, migrations (Alembic) and the reporting
queries. For the default SQLite file it writes and reads what every run needs (create the run,
save jobs and steps, finish it) with plain SQL on one stdlib connection: an engine costs ~7 ms to
create and every statement ~1.5 ms to compile the first time in a process, which is most of a
fully cached run. The schema stays the one of ``store/schema.py``; rows are stored exactly as
SQLAlchemy stores them (JSON columns as JSON text, booleans as 0/1), which the tests check by
reading each path's rows back through the other.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

PRAGMAS = (
    "PRAGMA busy_timeout=30000",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)
JSON_COLUMNS: Mapping[str, frozenset[str]] = {
    "runs": frozenset({"variables", "selected"}),
    "jobs": frozenset({"matrix", "miss_reasons"}),
    "gate_results": frozenset({"data"}),
}
BOOL_COLUMNS: Mapping[str, frozenset[str]] = {
    "jobs": frozenset({"allow_failure"}),
    "test_results": frozenset({"restored"}),
}
#: Job columns an update never sets: the key, and what the plan fixed when the row was inserted.
#: Setting an indexed column, even to its own value, rewrites its index entry.
JOB_FIXED_COLUMNS = frozenset({"run_id", "id", "job", "stage", "matrix", "allow_failure"})
_NO_COLUMNS: frozenset[str] = frozenset()


def apply_pragmas(conn: sqlite3.Connection) -> None:
    """The connection settings of every history connection (this driver's and SQLAlchemy's)."""
    for pragma in PRAGMAS:
        conn.execute(pragma)
    with contextlib.suppress(sqlite3.OperationalError):
        # switching to WAL needs the file to itself: while another process creates or migrates
        # the database it reports "locked" at once (no busy wait); that process sets WAL anyway
        conn.execute("PRAGMA journal_mode=WAL")


class RawSqlite:
    """One stdlib connection to the history file, shared by the loop and worker threads (locked)."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.lock = threading.Lock()
        apply_pragmas(self.conn)

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self.conn.close()

    def revision(self) -> str | None:
        """The Alembic revision of the schema (None before the first migration)."""
        with self.lock:
            try:
                row = self.conn.execute("SELECT version_num FROM alembic_version").fetchone()
            except sqlite3.OperationalError:
                return None
        return str(row[0]) if row else None

    @contextlib.contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        """``BEGIN`` … ``COMMIT`` (``ROLLBACK`` on error); ``immediate`` takes the write lock first."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:  # SQLite may have rolled back already (disk full, I/O)
                    self.conn.execute("ROLLBACK")
                raise

    # --- writes -----------------------------------------------------------------------------------

    def create_run(self, values: dict[str, Any]) -> dict[str, Any]:
        """Insert a run with the next number of its pipeline; the stored values."""
        with self.transaction(immediate=True) as conn:  # the write lock makes the number unique
            row = conn.execute(
                "SELECT COALESCE(MAX(number), 0) + 1 FROM runs WHERE pipeline = ?", (values["pipeline"],)
            ).fetchone()
            stored = {**values, "number": int(row[0])}
            _insert(conn, "runs", [stored])
        return stored

    def update(self, table: str, values: Mapping[str, Any], **where: Any) -> None:
        """``UPDATE table SET values WHERE where``."""
        if not values:
            return
        params = _encode(table, dict(values))
        sets = ", ".join(f"{c} = :{c}" for c in params)
        conds = " AND ".join(f"{c} = :w_{c}" for c in where)
        params.update({f"w_{c}": v for c, v in where.items()})
        with self.transaction() as conn:
            conn.execute(f"UPDATE {table} SET {sets} WHERE {conds}", params)  # noqa: S608 - column names are ours

    def save_jobs(self, rows: Sequence[dict[str, Any]], *, insert: bool) -> None:
        """Insert job rows, or update them by ``(run_id, id)`` (all but ``JOB_FIXED_COLUMNS``)."""
        with self.transaction() as conn:
            if insert:
                _insert(conn, "jobs", rows)
                return
            cols = [c for c in rows[0] if c not in JOB_FIXED_COLUMNS]
            sets = ", ".join(f"{c} = :{c}" for c in cols)
            keep = [*cols, "run_id", "id"]
            conn.executemany(
                f"UPDATE jobs SET {sets} WHERE run_id = :run_id AND id = :id",  # noqa: S608 - our columns
                [_encode("jobs", {c: r[c] for c in keep}) for r in rows],
            )

    def replace_rows(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        """Insert ``rows``, replacing the earlier rows of the same ``(run_id, job_id)``."""
        with self.transaction() as conn:
            conn.executemany(
                f"DELETE FROM {table} WHERE run_id = ? AND job_id = ?",  # noqa: S608 - our table names
                sorted({(r["run_id"], r["job_id"]) for r in rows}),
            )
            _insert(conn, table, rows)

    # --- reads ------------------------------------------------------------------------------------

    def select(self, table: str, **where: Any) -> list[dict[str, Any]]:
        """Rows of ``table`` matching ``where`` (column = value), in insertion order."""
        conds = " AND ".join(f"{c} = :{c}" for c in where) or "1"
        with self.lock:
            cursor = self.conn.execute(f"SELECT * FROM {table} WHERE {conds} ORDER BY rowid", where)  # noqa: S608
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        return [_decode(table, dict(zip(names, row, strict=True))) for row in rows]

    def durations(self, pipeline: str, limit_runs: int) -> dict[str, float]:
        """Mean successful duration per job instance over the last finished runs of ``pipeline``."""
        query = """
            SELECT id, AVG(duration_s) FROM jobs
            WHERE status = 'success' AND run_id IN (
                SELECT id FROM runs WHERE pipeline = ? AND status IN ('success', 'failed')
                ORDER BY created_at DESC LIMIT ?)
            GROUP BY id"""
        with self.lock:
            rows = self.conn.execute(query, (pipeline, limit_runs)).fetchall()
        return {str(job): float(avg) for job, avg in rows if avg is not None}


def _insert(conn: sqlite3.Connection, table: str, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    cols = list(rows[0])
    sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})"  # noqa: S608
    conn.executemany(sql, [_encode(table, dict(r)) for r in rows])


def _encode(table: str, row: dict[str, Any]) -> dict[str, Any]:
    for column in JSON_COLUMNS.get(table, _NO_COLUMNS) & row.keys():
        row[column] = json.dumps(row[column])
    return row


def _decode(table: str, row: dict[str, Any]) -> dict[str, Any]:
    for column in JSON_COLUMNS.get(table, _NO_COLUMNS) & row.keys():
        if isinstance(row[column], str):
            row[column] = json.loads(row[column])
    for column in BOOL_COLUMNS.get(table, _NO_COLUMNS) & row.keys():
        row[column] = bool(row[column])
    return row
