"""The connections under ``SqlHistory``: one small interface, two drivers, every dialect difference here.

``SqlHistory`` writes each query once, as SQL text with ``:name`` parameters that SQLite and
PostgreSQL both read, and runs it through a ``Db``:

- ``SqliteDb``: the embedded default, on one stdlib ``sqlite3`` connection. SQLAlchemy costs ~7 ms to
  create an engine and ~1.5 ms per statement compiled the first time in a process, most of a fully
  cached run; the stdlib driver costs neither.
- ``SqlAlchemyDb``: PostgreSQL (or any other URL) through a SQLAlchemy engine and its pool.

What differs between them stays in this module: how a value is bound (JSON columns go in as JSON
text, booleans as booleans that SQLite stores as 0/1) and read back (``decode``), how a write lock
is taken, which exception is a constraint violation (``Conflict``), and the insertion order of rows
(SQLite's ``rowid``). The schema itself is ``store/schema.py`` (SQLAlchemy Core, migrated by Alembic).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from buildyard.errors import StoreError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

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
_NO_COLUMNS: frozenset[str] = frozenset()


class Conflict(StoreError):
    """A write broke a unique or primary-key constraint (a concurrent insert, a second decision)."""


class Tx(Protocol):
    """Statements inside one transaction."""

    def execute(self, sql: str, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] = ()) -> None:
        """Run ``sql`` once, or once per parameter set of a sequence."""
        ...

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The rows of a query, as column → raw value."""
        ...


class Db(Protocol):
    """A history database connection: transactions and reads."""

    #: ``sqlite`` or the SQLAlchemy dialect name (``postgresql``).
    dialect: str
    #: How to order a table's rows by insertion ("rowid" on SQLite, else the given fallback column).
    insertion_order: str | None

    def transaction(self, *, immediate: bool = False) -> contextlib.AbstractContextManager[Tx]:
        """One transaction (``immediate``: take the write lock first); a constraint breach is ``Conflict``."""
        ...

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The rows of a read-only query."""
        ...

    def close(self) -> None:
        """Release the connection(s)."""
        ...


def encode(table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """Bind values of a ``table`` row: JSON columns as JSON text (what both drivers accept)."""
    out = dict(row)
    for column in JSON_COLUMNS.get(table, _NO_COLUMNS) & out.keys():
        out[column] = json.dumps(out[column])
    return out


def decode(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """A stored ``table`` row as record values: JSON text parsed (psycopg parses it already), 0/1 as bools."""
    for column in JSON_COLUMNS.get(table, _NO_COLUMNS) & row.keys():
        if isinstance(row[column], str):
            row[column] = json.loads(row[column])
    for column in BOOL_COLUMNS.get(table, _NO_COLUMNS) & row.keys():
        row[column] = bool(row[column])
    return row


def apply_pragmas(conn: sqlite3.Connection) -> None:
    """The connection settings of every SQLite history connection (this driver's and SQLAlchemy's)."""
    for pragma in PRAGMAS:
        conn.execute(pragma)
    with contextlib.suppress(sqlite3.OperationalError):
        # switching to WAL needs the file to itself: while another process creates or migrates
        # the database it reports "locked" at once (no busy wait); that process sets WAL anyway
        conn.execute("PRAGMA journal_mode=WAL")


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] = ()) -> None:
        if isinstance(params, Mapping):
            self.conn.execute(sql, params)
        elif params:
            self.conn.executemany(sql, params)
        else:
            self.conn.execute(sql)

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, params or {})
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class SqliteDb:
    """One stdlib connection to the history file, shared by the loop and worker threads (locked)."""

    dialect = "sqlite"
    insertion_order: str | None = "rowid"

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
    def transaction(self, *, immediate: bool = False) -> Iterator[Tx]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error).

        Every transaction here writes, so each takes the write lock first (``immediate`` is implied):
        a deferred one that reads, then writes, cannot wait for another process's writer (in WAL mode
        SQLite answers "database is locked" at once instead of calling the busy handler), which broke
        concurrent runs of one project (tests/cli/test_run_cli.py, about one time in five).
        """
        del immediate  # always
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTx(self.conn)
                self.conn.execute("COMMIT")
            except BaseException as exc:
                if self.conn.in_transaction:  # SQLite may have rolled back already (disk full, I/O)
                    self.conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.IntegrityError):
                    raise Conflict(str(exc)) from None
                raise

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The rows of a read-only query."""
        with self.lock:
            return _SqliteTx(self.conn).rows(sql, params)


class _SqlAlchemyTx:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] = ()) -> None:
        import sqlalchemy as sa

        if isinstance(params, Mapping):
            self.conn.execute(sa.text(sql), dict(params))
        elif params:
            self.conn.execute(sa.text(sql), [dict(p) for p in params])
        else:
            self.conn.execute(sa.text(sql))

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        import sqlalchemy as sa

        return [dict(row._mapping) for row in self.conn.execute(sa.text(sql), dict(params or {}))]


class SqlAlchemyDb:
    """A SQLAlchemy engine (PostgreSQL; SQLite in memory or with URL options) and its pool."""

    insertion_order: str | None = None

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        if self.dialect == "sqlite":
            self.insertion_order = "rowid"

    @contextlib.contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[Tx]:
        """One transaction. PostgreSQL needs no explicit lock: writers that collide get ``Conflict``."""
        from sqlalchemy.exc import IntegrityError

        try:
            with self.engine.begin() as conn:
                yield _SqlAlchemyTx(conn)
        except IntegrityError as exc:
            raise Conflict(str(exc.orig)) from None

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The rows of a read-only query."""
        with self.engine.connect() as conn:
            return _SqlAlchemyTx(conn).rows(sql, params)

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.engine.dispose()
