"""``SqlHistory``: the ``History`` contract on SQLite (default, WAL) and PostgreSQL, each query written once.

Queries are SQL text with ``:name`` parameters, run through a ``Db`` (``store/db.py``): the stdlib
``sqlite3`` driver for the embedded SQLite file, a SQLAlchemy engine for PostgreSQL. What differs
between the two lives in ``db.py``. The schema is migrated with Alembic on open, but Alembic (and
SQLAlchemy) is only imported when the stored revision is not the head one, so opening an up-to-date
SQLite store costs one query.
"""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buildyard.errors import NotFoundError, StoreError, UsageError
from buildyard.store.db import Conflict, Db, SqlAlchemyDb, SqliteDb, apply_pragmas, decode, encode
from buildyard.store.deployments import DEPLOYMENT_STATUSES, ApprovalRecord, DeploymentRecord
from buildyard.store.records import (
    RUN_ID_LENGTH,
    GateRecord,
    JobRecord,
    RunRecord,
    StepRecord,
    TestRecord,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

HEAD_REVISION = "0023"
#: Job columns an update never sets: the key, and what the plan fixed when the row was inserted.
#: Setting an indexed column, even to its own value, rewrites its index entry.
JOB_FIXED_COLUMNS = frozenset({"run_id", "id", "job", "stage", "matrix", "allow_failure"})
#: At most this many of a test's newest executions are a run's flakiness evidence (bounded memory:
#: a test run every minute for the 14-day window would otherwise be ~20 000 rows).
FLAKINESS_ROWS_PER_TEST = 200
_RUN_COLUMNS = frozenset(RunRecord.__slots__)
_JOB_SELECT = ", ".join(JobRecord.__slots__)
_DEPLOYMENT_COLUMNS = tuple(name for name in DeploymentRecord.__slots__ if name != "run_number")


def _row(record: Any) -> dict[str, Any]:
    """A record's fields as a dict (shallow: ``dataclasses.asdict`` deep-copies and costs ~0.1 ms a row)."""
    return {name: getattr(record, name) for name in record.__slots__}


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"  # noqa: S608 - our columns


def default_url(home: Path) -> str:
    """The embedded SQLite database under ``home`` (quoted: a URL decodes ``%xx`` and stops at ``?``)."""
    return f"sqlite:///{urllib.parse.quote(str(home / 'buildyard.db'), safe='/')}"


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///PATH`` URL (decoded as SQLAlchemy decodes it); "" for other URLs."""
    if not url.startswith("sqlite:///") or "?" in url:
        return ""
    return urllib.parse.unquote(url.removeprefix("sqlite:///"))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    apply_pragmas(dbapi_conn)


class SqlHistory:
    """The history in a SQL database: SQLite by its file through the stdlib driver, else SQLAlchemy."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()
        self.db: Db
        path = sqlite_path(url)
        try:
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                sqlite = self.db = SqliteDb(path)
                if sqlite.revision() != HEAD_REVISION:
                    self._migrate()
            else:
                self._migrate()
                self.db = SqlAlchemyDb(self.engine)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open history database {path}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - classified by _store_error (SQLAlchemy is lazy)
            raise _store_error(url, exc) from None

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (created on first use, by one thread): migrations and PostgreSQL."""
        with self._engine_lock:
            return self._engine or self._create_engine()

    def _create_engine(self) -> Engine:
        import sqlalchemy as sa

        if self._engine is None:
            if self.is_sqlite:
                self._engine = sa.create_engine(self.url, connect_args={"timeout": 30})
                sa.event.listen(self._engine, "connect", _sqlite_pragmas)
            else:
                self._engine = sa.create_engine(self.url, pool_pre_ping=True)
        return self._engine

    def close(self) -> None:
        """Close the connection(s) and dispose of the connection pool."""
        self.db.close()
        if self._engine is not None:
            self._engine.dispose()

    # --- schema -----------------------------------------------------------------------------------

    def _revision(self) -> str | None:
        import sqlalchemy as sa
        from sqlalchemy.exc import OperationalError, ProgrammingError

        with self.engine.connect() as conn:
            try:
                return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            except (OperationalError, ProgrammingError):
                conn.rollback()
                return None

    def _migrate(self) -> None:
        if self._revision() == HEAD_REVISION:
            return
        with self._migration_lock(), self.engine.connect() as conn:
            if self._revision() == HEAD_REVISION:  # another process migrated meanwhile
                return
            from alembic import command
            from alembic.config import Config

            cfg = Config()
            cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        import sqlalchemy as sa

        if self.is_sqlite:
            db = sa.engine.make_url(self.url).database or ""
            if not db or db == ":memory:":
                yield
                return
            with Path(db + ".lock").open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        else:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT pg_advisory_lock(424242)"))
                try:
                    yield
                finally:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(424242)"))
                    conn.commit()

    # --- runs -------------------------------------------------------------------------------------

    def create_run(self, record: RunRecord) -> RunRecord:
        """Insert ``record`` with the next number of its pipeline (retries on a concurrent insert)."""
        values = _row(record)
        for _ in range(50):
            try:
                with self.db.transaction(immediate=True) as tx:  # SQLite: the write lock makes it unique
                    [row] = tx.rows(
                        "SELECT COALESCE(MAX(number), 0) + 1 AS n FROM runs WHERE pipeline = :pipeline",
                        {"pipeline": record.pipeline},
                    )
                    values["number"] = int(row["n"])
                    tx.execute(_insert_sql("runs", list(values)), encode("runs", values))
                return RunRecord(**values)
            except Conflict:
                time.sleep(0.01)
        raise StoreError("could not allocate a run number (too many concurrent runs); try again")

    def update_run(self, run_id: str, **values: Any) -> None:
        """Update fields of a run."""
        if not values:
            return
        unknown = values.keys() - _RUN_COLUMNS - {"id"}
        if unknown or "id" in values:
            raise ValueError(f"not updatable run fields: {sorted(unknown | ({'id'} & values.keys()))}")
        sets = ", ".join(f"{c} = :{c}" for c in values)
        with self.db.transaction() as tx:
            tx.execute(f"UPDATE runs SET {sets} WHERE id = :w_id", {**encode("runs", values), "w_id": run_id})  # noqa: S608 - checked columns

    def list_runs(self, *, pipeline: str | None = None, limit: int = 20) -> list[RunRecord]:
        """Newest runs first."""
        where = "WHERE pipeline = :pipeline" if pipeline else ""
        rows = self.db.rows(
            f"SELECT * FROM runs {where} ORDER BY created_at DESC LIMIT :limit",  # noqa: S608 - no input
            {"pipeline": pipeline, "limit": limit},
        )
        return [RunRecord(**decode("runs", r)) for r in rows]

    def get_run(self, ref: str | None, *, pipeline: str | None = None) -> RunRecord:
        """A run by number (``N`` or ``PIPELINE#N``), id or id prefix (latest run when ``ref`` is None
        or 'last'). A bare number that several pipelines of this history have is refused as ambiguous."""
        if ref is not None and "#" in ref:
            pipeline, _, ref = ref.rpartition("#")
        conds = ["pipeline = :pipeline"] if pipeline else []
        limit = 2
        if ref in (None, "last", "latest"):
            limit = 1
        elif len(ref) == RUN_ID_LENGTH:  # a whole id, even if all digits
            conds.append("id = :ref")
        elif ref.isdigit():
            conds.append("number = :number")
        else:  # case-sensitive on both databases (SQLite's LIKE is not)
            conds.append("substr(id, 1, :length) = :ref")
        where = f"WHERE {' AND '.join(conds)}" if conds else ""
        params = {"pipeline": pipeline, "ref": ref, "length": len(ref or ""), "limit": limit}
        if ref is not None and ref.isdigit() and len(ref) != RUN_ID_LENGTH:
            params["number"] = int(ref)
        rows = [
            RunRecord(**decode("runs", r))
            for r in self.db.rows(
                f"SELECT * FROM runs {where} ORDER BY created_at DESC LIMIT :limit",  # noqa: S608 - no input
                params,
            )
        ]
        return one_run(rows, ref)

    def durations(self, pipeline: str, limit_runs: int = 5) -> dict[str, float]:
        """Mean successful duration of each job instance over the last finished runs of ``pipeline``."""
        rows = self.db.rows(
            """SELECT id, AVG(duration_s) AS mean FROM jobs
            WHERE status = 'success' AND run_id IN (
                SELECT id FROM runs WHERE pipeline = :pipeline AND status IN ('success', 'failed')
                ORDER BY created_at DESC LIMIT :limit)
            GROUP BY id""",
            {"pipeline": pipeline, "limit": limit_runs},
        )
        return {str(r["id"]): float(r["mean"]) for r in rows if r["mean"] is not None}

    def latest_run_id(self, *, pipeline: str, branch: str, status: str, before: float) -> str | None:
        """Id of the newest run of ``pipeline`` on ``branch`` with ``status`` created before ``before``."""
        rows = self.db.rows(
            """SELECT id FROM runs
            WHERE pipeline = :pipeline AND branch = :branch AND status = :status AND created_at < :before
            ORDER BY created_at DESC LIMIT 1""",
            {"pipeline": pipeline, "branch": branch, "status": status, "before": before},
        )
        return str(rows[0]["id"]) if rows else None

    # --- jobs and steps ---------------------------------------------------------------------------

    def save_jobs(self, records: Sequence[JobRecord], *, insert: bool = False) -> None:
        """Insert or update job rows in one transaction (an update leaves ``JOB_FIXED_COLUMNS`` alone)."""
        if not records:
            return
        rows = [_row(r) for r in records]
        with self.db.transaction() as tx:
            if insert:  # each after the jobs its run has: ``seq`` keeps the planned order
                next_seq: dict[str, int] = {}
                for r in rows:
                    if r["run_id"] not in next_seq:
                        [found] = tx.rows(
                            "SELECT COALESCE(MAX(seq), -1) + 1 AS n FROM jobs WHERE run_id = :run_id",
                            {"run_id": r["run_id"]},
                        )
                        next_seq[r["run_id"]] = int(found["n"])
                    r["seq"] = next_seq[r["run_id"]]
                    next_seq[r["run_id"]] += 1
                tx.execute(_insert_sql("jobs", list(rows[0])), [encode("jobs", r) for r in rows])
                return
            cols = [c for c in rows[0] if c not in JOB_FIXED_COLUMNS]
            sets = ", ".join(f"{c} = :{c}" for c in cols)
            keep = [*cols, "run_id", "id"]
            tx.execute(
                f"UPDATE jobs SET {sets} WHERE run_id = :run_id AND id = :id",  # noqa: S608 - our columns
                [encode("jobs", {c: r[c] for c in keep}) for r in rows],
            )

    def jobs(self, run_id: str) -> list[JobRecord]:
        """Job rows of a run, in planned order (rows from before revision 0008: in insertion order
        on SQLite, by readiness on other databases)."""
        order = self.db.insertion_order or "ready_at"
        rows = self.db.rows(
            f"SELECT {_JOB_SELECT} FROM jobs WHERE run_id = :run_id ORDER BY COALESCE(seq, -1), {order}",  # noqa: S608
            {"run_id": run_id},
        )
        return [JobRecord(**decode("jobs", r)) for r in rows]

    def save_steps(self, records: Sequence[StepRecord]) -> None:
        """Insert step rows (replacing a previous attempt's steps of the same jobs)."""
        self._replace("steps", records)

    def steps(self, run_id: str, job_id: str | None = None) -> list[StepRecord]:
        """Step rows of a run (or of one job), by job then order."""
        where = "run_id = :run_id" + (" AND job_id = :job_id" if job_id is not None else "")
        rows = self.db.rows(
            f"SELECT * FROM steps WHERE {where} ORDER BY job_id, idx",  # noqa: S608 - no input
            {"run_id": run_id, "job_id": job_id},
        )
        return [StepRecord(**r) for r in rows]

    def _replace(self, table: str, records: Sequence[Any]) -> None:
        """Insert ``records``, replacing the earlier rows of the same ``(run_id, job_id)``."""
        if not records:
            return
        rows = [_row(r) for r in records]
        with self.db.transaction() as tx:
            tx.execute(
                f"DELETE FROM {table} WHERE run_id = :run_id AND job_id = :job_id",  # noqa: S608 - ours
                [{"run_id": r, "job_id": j} for r, j in sorted({(r["run_id"], r["job_id"]) for r in rows})],
            )
            tx.execute(_insert_sql(table, list(rows[0])), [encode(table, r) for r in rows])

    # --- gates --------------------------------------------------------------------------------------

    def save_gates(self, records: Sequence[GateRecord]) -> None:
        """Insert gate results (replacing earlier ones of the same jobs)."""
        self._replace("gate_results", records)

    def gates(self, run_id: str) -> list[GateRecord]:
        """Gate results of a run, by job then order."""
        rows = self.db.rows(
            "SELECT * FROM gate_results WHERE run_id = :run_id ORDER BY job_id, idx", {"run_id": run_id}
        )
        return [GateRecord(**decode("gate_results", r)) for r in rows]

    def latest_gate_data(
        self, *, pipeline: str, branch: str, gate: str, before: float
    ) -> dict[str, Any] | None:
        """The recorded data of ``gate`` in the latest successful run of ``pipeline`` on ``branch``
        created before ``before`` (a baseline for coverage ``no_decrease`` and benchmark regressions)."""
        rows = self.db.rows(
            """SELECT g.data AS data FROM gate_results g JOIN runs r ON r.id = g.run_id
            WHERE r.pipeline = :pipeline AND r.branch = :branch AND r.status = 'success'
              AND r.created_at < :before AND g.gate = :gate
            ORDER BY r.created_at DESC LIMIT 1""",
            {"pipeline": pipeline, "branch": branch, "gate": gate, "before": before},
        )
        return dict(decode("gate_results", rows[0])["data"]) if rows else None

    def gate_verdict(self, run_id: str) -> tuple[bool, str]:
        """Did run ``run_id`` pass its gates? ``(passed, detail)``; a run without gate results did not."""
        runs = self.db.rows("SELECT number FROM runs WHERE id = :id", {"id": run_id})
        if not runs:
            return False, f"run {run_id[:12]} is not in this history"
        rows = self.db.rows("SELECT gate, status FROM gate_results WHERE run_id = :id", {"id": run_id})
        return verdict(int(runs[0]["number"]), [(r["gate"], r["status"]) for r in rows])

    # --- tests --------------------------------------------------------------------------------------

    def save_tests(self, records: Sequence[TestRecord]) -> None:
        """Insert test results (replacing earlier ones of the same jobs)."""
        self._replace("test_results", records)

    def tests_of_run(self, run_id: str) -> list[TestRecord]:
        """Test results of one run, in recorded order."""
        rows = self.db.rows(
            "SELECT * FROM test_results WHERE run_id = :run_id ORDER BY job_id, idx", {"run_id": run_id}
        )
        return [TestRecord(**decode("test_results", r)) for r in rows]

    def tests_since(self, since: float, *, pipeline: str | None = None) -> list[TestRecord]:
        """Test executions recorded at or after ``since``, oldest first (restored results left out),
        of every pipeline or of one."""
        scope = "AND r.pipeline = :pipeline" if pipeline is not None else ""
        rows = self.db.rows(
            f"""SELECT t.* FROM test_results t JOIN runs r ON r.id = t.run_id
            WHERE t.at >= :since AND t.restored = :no {scope}
            ORDER BY t.at, t.run_id, t.job_id, t.idx""",  # noqa: S608 - no input
            {"since": since, "no": False, "pipeline": pipeline},
        )
        return [TestRecord(**decode("test_results", r)) for r in rows]

    def tests_for_flakiness(self, *, run_id: str, pipeline: str, since: float) -> list[TestRecord]:
        """Executions since ``since`` of the tests run ``run_id`` recorded, in runs of ``pipeline``
        (restored results left out), oldest first: what a run's flakiness verdict needs. Bounded: the
        newest ``FLAKINESS_ROWS_PER_TEST`` executions of each test, read through the pipeline's runs
        not finished before ``since`` (a test's ``at`` is its job's finish)."""
        rows = self.db.rows(
            """SELECT * FROM (
                SELECT t.*, ROW_NUMBER() OVER (
                    PARTITION BY t.suite, t.classname, t.name ORDER BY t.at DESC) AS newest
                FROM test_results t JOIN runs r ON r.id = t.run_id
                WHERE r.pipeline = :pipeline
                  AND (r.finished_at >= :since OR r.finished_at IS NULL)
                  AND t.at >= :since AND t.restored = :no
                  AND (t.suite, t.classname, t.name) IN (
                      SELECT suite, classname, name FROM test_results WHERE run_id = :run_id)
            ) w WHERE newest <= :per_test ORDER BY at, run_id, job_id, idx""",
            {
                "pipeline": pipeline,
                "since": since,
                "no": False,
                "run_id": run_id,
                "per_test": FLAKINESS_ROWS_PER_TEST,
            },
        )
        for r in rows:
            del r["newest"]
        return [TestRecord(**decode("test_results", r)) for r in rows]

    def recorded_reports(self, reports: Collection[str]) -> set[str]:
        """Which of the report digests ``reports`` are already recorded."""
        wanted = sorted(set(reports) - {""})
        found: set[str] = set()
        for start in range(0, len(wanted), 500):  # bounded statement size
            chunk = wanted[start : start + 500]
            params = {f"r{i}": digest for i, digest in enumerate(chunk)}
            marks = ", ".join(f":{name}" for name in params)
            rows = self.db.rows(f"SELECT DISTINCT report FROM test_results WHERE report IN ({marks})", params)  # noqa: S608
            found.update(str(r["report"]) for r in rows)
        return found

    # --- deployments and approvals ----------------------------------------------------------------

    def start_deployment(self, record: DeploymentRecord) -> int:
        """Insert a deployment; return its id."""
        values = {k: getattr(record, k) for k in _DEPLOYMENT_COLUMNS if k != "id"}
        with self.db.transaction() as tx:
            [row] = tx.rows(_insert_sql("deployments", list(values)) + " RETURNING id", values)
        return int(row["id"])

    def finish_deployment(self, deployment_id: int, status: str) -> None:
        """Record how a deployment ended (one of ``DEPLOYMENT_STATUSES``).

        Only a running deployment ends, and only a failed one becomes ``rolled_back``: a late
        "failed" (a cancellation racing the end) never overwrites a recorded success.
        """
        if status not in DEPLOYMENT_STATUSES:
            raise ValueError(f"unknown deployment status {status!r}")
        allowed = ("running", "failed") if status == "rolled_back" else ("running",)
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE deployments SET status = :status, finished_at = :at"
                " WHERE id = :id AND status IN (:a0, :a1)",
                {
                    "status": status,
                    "at": time.time(),
                    "id": deployment_id,
                    "a0": allowed[0],
                    "a1": allowed[-1],
                },
            )

    def mark_rolled_back(self, deployment_id: int) -> None:
        """A successful deployment that a rollback replaced (no longer a rollback target)."""
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE deployments SET status = 'rolled_back' WHERE id = :id AND status = 'success'",
                {"id": deployment_id},
            )

    def deployments(
        self, environment: str | None = None, *, run_id: str | None = None, limit: int = 50
    ) -> list[DeploymentRecord]:
        """Deployments, newest first (of one environment and/or one run)."""
        conds = [
            c
            for c, v in (("d.environment = :env", environment), ("d.run_id = :run_id", run_id))
            if v is not None
        ]
        where = f"WHERE {' AND '.join(conds)}" if conds else ""
        return self._deployments(where, {"env": environment, "run_id": run_id, "limit": limit})

    def last_good_version(
        self, environment: str, *, artifact: str, exclude: str | None = None, before: int | None = None
    ) -> DeploymentRecord | None:
        """The newest successful deployment of ``artifact`` to ``environment`` (older than deployment
        ``before``, of a version other than ``exclude``): what a rollback goes back to."""
        conds = ["d.environment = :env", "d.artifact = :artifact", "d.status = 'success'"]
        if exclude is not None:
            conds.append("d.version <> :exclude")
        if before is not None:
            conds.append("d.id < :before")
        params = {"env": environment, "artifact": artifact, "exclude": exclude, "before": before, "limit": 1}
        found = self._deployments(f"WHERE {' AND '.join(conds)}", params)
        return found[0] if found else None

    def _deployments(self, where: str, params: Mapping[str, Any]) -> list[DeploymentRecord]:
        rows = self.db.rows(
            f"""SELECT d.*, r.number AS run_number FROM deployments d JOIN runs r ON r.id = d.run_id
            {where} ORDER BY d.id DESC LIMIT :limit""",  # noqa: S608 - conditions are ours
            params,
        )
        return [DeploymentRecord(**r) for r in rows]

    def decide(self, record: ApprovalRecord) -> None:
        """Record an approval decision; a second decision on the same job is refused."""
        values = _row(record)
        try:
            with self.db.transaction() as tx:
                tx.execute(_insert_sql("approvals", list(values)), values)
        except Conflict:
            raise already_decided(record, self.approval(record.run_id, record.job_id)) from None

    def approval(self, run_id: str, job_id: str) -> ApprovalRecord | None:
        """The decision on a job of a run, if any."""
        rows = self.db.rows(
            "SELECT * FROM approvals WHERE run_id = :run_id AND job_id = :job_id",
            {"run_id": run_id, "job_id": job_id},
        )
        return ApprovalRecord(**rows[0]) if rows else None


# --- rules every backend shares (the in-memory fake too) ---------------------------------------------


def one_run(rows: Sequence[RunRecord], ref: str | None) -> RunRecord:
    """The run ``ref`` found (up to two candidates, newest first), or the one-line reason why not."""
    if not rows:
        what = "no runs recorded yet" if ref in (None, "last", "latest") else f"no run '{ref}'"
        raise NotFoundError(f"{what} (see 'buildyard history')")
    if len(rows) > 1 and ref is not None and ref.isdigit() and len(ref) != RUN_ID_LENGTH:
        names = " and ".join(sorted({r.pipeline for r in rows}))
        raise NotFoundError(
            f"run #{ref} is ambiguous: pipelines {names} both have one; give PIPELINE#{ref}"
            f" (e.g. {rows[0].pipeline}#{ref})"
        )
    if len(rows) > 1:
        raise NotFoundError(f"run id prefix '{ref}' is ambiguous; give more characters")
    return rows[0]


def verdict(number: int, gates: Sequence[tuple[str, str]]) -> tuple[bool, str]:
    """A run's gate verdict from its ``(gate, status)`` results."""
    if not gates:
        return False, f"run #{number} evaluated no gates"
    failed = [gate for gate, status in gates if status == "failed"]
    if failed:
        return False, f"run #{number} failed gate(s): {', '.join(failed)}"
    return True, f"run #{number} passed {len(gates)} gate(s)"


def already_decided(record: ApprovalRecord, existing: ApprovalRecord | None) -> UsageError:
    """The error of a second decision on a job."""
    how = f"{existing.decision}d by {existing.actor}" if existing else "decided"
    return UsageError(f"job '{record.job_id}' was already {how}")


def _store_error(url: str, exc: Exception) -> Exception:
    """A database-open failure as a one-line ``StoreError`` (anything else is a bug: re-raised)."""
    from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError

    if isinstance(exc, OperationalError | ProgrammingError):
        why = " ".join(str(exc.orig).split())  # drivers add hints on further lines: one line
        return StoreError(f"cannot open history database {_redact(url)}: {why}")
    if isinstance(exc, ArgumentError):
        return StoreError(f"invalid database URL {_redact(url)}: {exc}")
    if isinstance(exc, ModuleNotFoundError):
        return StoreError(f"database driver missing for {_redact(url)}: {exc.name} (pip install it)")
    return exc


def _redact(url: str) -> str:
    """Hide a password in a database URL."""
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid url>"


__all__ = [
    "HEAD_REVISION",
    "JOB_FIXED_COLUMNS",
    "SqlHistory",
    "default_url",
    "sqlite_path",
]
