"""The history repository: record runs, job instances and steps; query them back.

``SqlHistory`` works on SQLite (default, WAL) and PostgreSQL (``BUILDYARD_DB=postgresql://…``). The
schema is migrated with Alembic on open, but Alembic is only imported when the stored revision is not
the head one, so opening an up-to-date store costs one query.
"""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Collection, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from buildyard.errors import NotFoundError, StoreError
from buildyard.store.deployments import ApprovalRecord, DeploymentRecord, DeploymentStore
from buildyard.store.rawsqlite import JOB_FIXED_COLUMNS, RawSqlite, apply_pragmas

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

HEAD_REVISION = "0021"
RUN_ID_LENGTH = 32  # uuid4 hex


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run as stored."""

    id: str
    pipeline: str
    number: int
    status: str
    event: str
    created_at: float
    ref: str = ""
    branch: str = ""
    tag: str = ""
    sha: str = ""
    trigger: str = "cli"
    project_dir: str = ""
    pipeline_file: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    selected: list[str] = field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    queue_s: float | None = None
    jobs_total: int = 0
    message: str = ""


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job instance of a run as stored."""

    run_id: str
    id: str
    job: str
    status: str
    stage: str | None = None
    matrix: dict[str, str] = field(default_factory=dict)
    attempts: int = 0
    exit_code: int | None = None
    allow_failure: bool = False
    ready_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    queue_s: float | None = None
    cpu_seconds: float | None = None
    peak_rss: int | None = None
    skip_reason: str | None = None
    message: str = ""
    log_path: str = ""
    cache_status: str = "off"
    cache_key: str = ""
    saved_s: float = 0.0
    miss_reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step of a job instance."""

    run_id: str
    job_id: str
    idx: int
    name: str
    status: str
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None


@dataclass(frozen=True, slots=True)
class GateRecord:
    """One gate decision of a run (``job_id`` is ``gates`` for pipeline-level gates)."""

    run_id: str
    job_id: str
    idx: int
    gate: str
    kind: str
    status: str
    reason: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TestRecord:
    """One attempt of one test in one run (from the JUnit reports of a ``tests`` gate)."""

    __test__ = False  # not a pytest test class

    run_id: str
    job_id: str
    idx: int
    suite: str
    classname: str
    name: str
    outcome: str
    duration: float
    attempt: int
    sha: str
    at: float
    tree: str = ""  # digest of the uncommitted changes tested ("" for a clean checkout)
    report: str = ""  # digest of the JUnit report the row came from
    restored: bool = False  # repeats an already recorded report: not a new execution


class History(Protocol):
    """What the engine and the faces need from a history store."""

    def create_run(self, record: RunRecord) -> RunRecord:
        """Insert a run, allocating its number; return the stored record."""
        ...

    def update_run(self, run_id: str, **values: Any) -> None:
        """Update fields of a run."""
        ...

    def save_jobs(self, records: Sequence[JobRecord], *, insert: bool = False) -> None:
        """Insert (``insert=True``) or update job instance rows.

        An update sets a job's results only: the key and what the plan fixed at insert (name, stage,
        matrix, ``allow_failure``, see ``JOB_FIXED_COLUMNS``) keep their inserted values.
        """
        ...

    def save_steps(self, records: Sequence[StepRecord]) -> None:
        """Insert step rows."""
        ...

    def save_gates(self, records: Sequence[GateRecord]) -> None:
        """Insert gate results (replacing earlier ones of the same jobs)."""
        ...

    def gates(self, run_id: str) -> list[GateRecord]:
        """Gate results of a run."""
        ...

    def save_tests(self, records: Sequence[TestRecord]) -> None:
        """Insert test results."""
        ...

    def tests_since(self, since: float) -> list[TestRecord]:
        """Test executions recorded at or after ``since`` (epoch seconds; restored results left out)."""
        ...

    def recorded_reports(self, reports: Collection[str]) -> set[str]:
        """Which of the report digests ``reports`` are already recorded."""
        ...

    def list_runs(self, *, pipeline: str | None = None, limit: int = 20) -> list[RunRecord]:
        """Newest runs first."""
        ...

    def get_run(self, ref: str | None, *, pipeline: str | None = None) -> RunRecord:
        """A run by number, id (or unique id prefix), or the latest when ``ref`` is None."""
        ...

    def jobs(self, run_id: str) -> list[JobRecord]:
        """Job instances of a run, in recorded order."""
        ...

    def steps(self, run_id: str, job_id: str | None = None) -> list[StepRecord]:
        """Steps of a run (optionally of one job)."""
        ...

    def durations(self, pipeline: str, limit_runs: int = 5) -> dict[str, float]:
        """Recent mean duration per job instance (scheduling priorities)."""
        ...

    def start_deployment(self, record: DeploymentRecord) -> int:
        """Insert a deployment; return its id."""
        ...

    def finish_deployment(self, deployment_id: int, status: str) -> None:
        """Record how a deployment ended."""
        ...

    def deployments(
        self, environment: str | None = None, *, run_id: str | None = None, limit: int = 50
    ) -> list[DeploymentRecord]:
        """Deployments, newest first."""
        ...

    def last_good_version(
        self, environment: str, *, artifact: str, exclude: str | None = None, before: int | None = None
    ) -> DeploymentRecord | None:
        """The newest successful deployment of ``artifact`` to ``environment`` (rollback target)."""
        ...

    def decide(self, record: ApprovalRecord) -> None:
        """Record an approval decision (refused if the job was already decided)."""
        ...

    def approval(self, run_id: str, job_id: str) -> ApprovalRecord | None:
        """The decision on a job of a run, if any."""
        ...

    def gate_verdict(self, run_id: str) -> tuple[bool, str]:
        """Did a run pass its gates? ``(passed, detail)``."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def _row(record: Any) -> dict[str, Any]:
    """A record's fields as a dict (shallow: ``dataclasses.asdict`` deep-copies and costs ~0.1 ms a row)."""
    return {name: getattr(record, name) for name in record.__slots__}


def default_url(home: Path) -> str:
    """The embedded SQLite database under ``home`` (quoted: a URL decodes ``%xx`` and stops at ``?``)."""
    return f"sqlite:///{urllib.parse.quote(str(home / 'buildyard.db'), safe='/')}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    apply_pragmas(dbapi_conn)


class SqlHistory(DeploymentStore):
    """History in a SQL database through SQLAlchemy Core."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._engine: Engine | None = None
        #: The embedded default (a SQLite file) is written and read on the run's hot path with the
        #: stdlib driver directly (see ``RawSqlite``); SQLAlchemy is engaged lazily for the rest.
        self.raw: RawSqlite | None = None
        self._engine_lock = threading.Lock()
        path = sqlite_path(url)
        try:
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                self.raw = RawSqlite(path)
                if self.raw.revision() == HEAD_REVISION:
                    return  # the embedded default, up to date: SQLAlchemy is not even imported
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open history database {path}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - classified by _store_error (SQLAlchemy is lazy)
            raise _store_error(url, exc) from None

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (created on first use, by one thread)."""
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

    # --- schema -----------------------------------------------------------------------------------

    def _revision(self, conn: Connection) -> str | None:
        import sqlalchemy as sa
        from sqlalchemy.exc import OperationalError, ProgrammingError

        try:
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        except (OperationalError, ProgrammingError):
            conn.rollback()
            return None

    def _migrate(self) -> None:
        with self.engine.connect() as conn:
            if self._revision(conn) == HEAD_REVISION:
                return
        with self._migration_lock(), self.engine.connect() as conn:
            if self._revision(conn) == HEAD_REVISION:  # another process migrated meanwhile
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

    # --- writes -----------------------------------------------------------------------------------

    def create_run(self, record: RunRecord) -> RunRecord:
        """Insert ``record`` with the next number of its pipeline (retries on a concurrent insert)."""
        if self.raw is not None:
            return RunRecord(**self.raw.create_run(_row(record)))
        import sqlalchemy as sa
        from sqlalchemy.exc import IntegrityError

        from buildyard.store.schema import runs

        for _ in range(50):
            try:
                with self.engine.begin() as conn:
                    number = conn.execute(
                        sa.select(sa.func.coalesce(sa.func.max(runs.c.number), 0) + 1).where(
                            runs.c.pipeline == record.pipeline
                        )
                    ).scalar_one()
                    values = {**asdict(record), "number": number}
                    conn.execute(runs.insert().values(**values))
                    return RunRecord(**values)
            except IntegrityError:
                time.sleep(0.01)
        raise StoreError("could not allocate a run number (too many concurrent runs); try again")

    def update_run(self, run_id: str, **values: Any) -> None:
        """Update fields of a run."""
        if self.raw is not None:
            self.raw.update("runs", values, id=run_id)
            return
        from buildyard.store.schema import runs

        with self.engine.begin() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id).values(**values))

    def save_jobs(self, records: Sequence[JobRecord], *, insert: bool = False) -> None:
        """Insert or update job rows in one transaction."""
        if not records:
            return
        rows = [_row(r) for r in records]
        if self.raw is not None:
            self.raw.save_jobs(rows, insert=insert)
            return
        import sqlalchemy as sa

        from buildyard.store.schema import jobs

        with self.engine.begin() as conn:
            if insert:
                conn.execute(jobs.insert(), rows)
                return
            cols = [c for c in rows[0] if c not in JOB_FIXED_COLUMNS]
            stmt = (
                jobs.update()
                .where(jobs.c.run_id == sa.bindparam("b_run_id"), jobs.c.id == sa.bindparam("b_id"))
                .values({c: sa.bindparam(c) for c in cols})
            )
            conn.execute(
                stmt, [{**{c: r[c] for c in cols}, "b_run_id": r["run_id"], "b_id": r["id"]} for r in rows]
            )

    def save_steps(self, records: Sequence[StepRecord]) -> None:
        """Insert step rows (replacing a previous attempt's steps of the same jobs)."""
        if not records:
            return
        if self.raw is not None:
            self.raw.replace_rows("steps", [_row(r) for r in records])
            return
        from buildyard.store.schema import steps

        with self.engine.begin() as conn:
            for run_id, job_id in {(r.run_id, r.job_id) for r in records}:
                conn.execute(steps.delete().where(steps.c.run_id == run_id, steps.c.job_id == job_id))
            conn.execute(steps.insert(), [_row(r) for r in records])

    def save_gates(self, records: Sequence[GateRecord]) -> None:
        """Insert gate results (replacing earlier ones of the same jobs)."""
        if not records:
            return
        if self.raw is not None:
            self.raw.replace_rows("gate_results", [_row(r) for r in records])
            return
        from buildyard.store.schema import gate_results

        with self.engine.begin() as conn:
            for run_id, job_id in {(r.run_id, r.job_id) for r in records}:
                conn.execute(
                    gate_results.delete().where(
                        gate_results.c.run_id == run_id, gate_results.c.job_id == job_id
                    )
                )
            conn.execute(gate_results.insert(), [_row(r) for r in records])

    def save_tests(self, records: Sequence[TestRecord]) -> None:
        """Insert test results (replacing earlier ones of the same jobs)."""
        if not records:
            return
        if self.raw is not None:
            self.raw.replace_rows("test_results", [_row(r) for r in records])
            return
        from buildyard.store.schema import test_results

        with self.engine.begin() as conn:
            for run_id, job_id in {(r.run_id, r.job_id) for r in records}:
                conn.execute(
                    test_results.delete().where(
                        test_results.c.run_id == run_id, test_results.c.job_id == job_id
                    )
                )
            conn.execute(test_results.insert(), [_row(r) for r in records])

    # --- reads ------------------------------------------------------------------------------------

    def latest_gate_data(
        self, *, pipeline: str, branch: str, gate: str, before: float
    ) -> dict[str, Any] | None:
        """The recorded data of ``gate`` in the latest successful run of ``pipeline`` on ``branch``
        created before ``before`` (a baseline for coverage ``no_decrease`` and benchmark regressions)."""
        import sqlalchemy as sa

        from buildyard.store.schema import gate_results, runs

        query = (
            sa.select(gate_results.c.data)
            .join(runs, runs.c.id == gate_results.c.run_id)
            .where(
                runs.c.pipeline == pipeline,
                runs.c.branch == branch,
                runs.c.status == "success",
                runs.c.created_at < before,
                gate_results.c.gate == gate,
            )
            .order_by(runs.c.created_at.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return dict(row[0]) if row is not None else None

    def latest_run_id(self, *, pipeline: str, branch: str, status: str, before: float) -> str | None:
        """Id of the newest run of ``pipeline`` on ``branch`` with ``status`` created before ``before``."""
        import sqlalchemy as sa

        from buildyard.store.schema import runs

        query = (
            sa.select(runs.c.id)
            .where(
                runs.c.pipeline == pipeline,
                runs.c.branch == branch,
                runs.c.status == status,
                runs.c.created_at < before,
            )
            .order_by(runs.c.created_at.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def tests_of_run(self, run_id: str) -> list[TestRecord]:
        """Test results of one run."""
        if self.raw is not None:
            return [TestRecord(**r) for r in self.raw.select("test_results", run_id=run_id)]
        import sqlalchemy as sa

        from buildyard.store.schema import test_results

        query = sa.select(test_results).where(test_results.c.run_id == run_id)
        with self.engine.connect() as conn:
            return [TestRecord(**r._asdict()) for r in conn.execute(query)]

    def tests_since(self, since: float) -> list[TestRecord]:
        """Test executions recorded at or after ``since``, oldest first (restored results left out)."""
        import sqlalchemy as sa

        from buildyard.store.schema import test_results

        query = (
            sa.select(test_results)
            .where(test_results.c.at >= since, test_results.c.restored.is_(False))
            .order_by(test_results.c.at)
        )
        with self.engine.connect() as conn:
            return [TestRecord(**r._asdict()) for r in conn.execute(query)]

    def tests_for_flakiness(self, *, run_id: str, pipeline: str, since: float) -> list[TestRecord]:
        """Executions since ``since`` of the tests run ``run_id`` recorded, in runs of ``pipeline``
        (restored results left out): what a run's flakiness verdict needs. Reads the rows of the
        pipeline's runs not finished before ``since`` (a test's ``at`` is its job's finish)."""
        import sqlalchemy as sa

        from buildyard.store.schema import runs, test_results

        names = sa.select(test_results.c.name).where(test_results.c.run_id == run_id).distinct()
        mine = sa.select(test_results.c.suite, test_results.c.classname, test_results.c.name).where(
            test_results.c.run_id == run_id
        )
        query = (
            sa.select(test_results)
            .join(runs, runs.c.id == test_results.c.run_id)
            .where(
                test_results.c.name.in_(names.scalar_subquery()),
                test_results.c.at >= since,
                test_results.c.restored.is_(False),
                runs.c.pipeline == pipeline,
                sa.or_(runs.c.finished_at >= since, runs.c.finished_at.is_(None)),
            )
        )
        with self.engine.connect() as conn:
            wanted = {tuple(r) for r in conn.execute(mine)}
            return [
                TestRecord(**r._asdict())
                for r in conn.execute(query)
                if (r.suite, r.classname, r.name) in wanted
            ]

    def recorded_reports(self, reports: Collection[str]) -> set[str]:
        """Which of the report digests ``reports`` are already recorded."""
        import sqlalchemy as sa

        from buildyard.store.schema import test_results

        wanted = sorted(set(reports) - {""})
        if not wanted:
            return set()
        query = sa.select(test_results.c.report).where(test_results.c.report.in_(wanted)).distinct()
        with self.engine.connect() as conn:
            return {str(r) for r in conn.execute(query).scalars()}

    def gates(self, run_id: str) -> list[GateRecord]:
        """Gate results of a run, by job then order."""
        import sqlalchemy as sa

        from buildyard.store.schema import gate_results

        query = (
            sa.select(gate_results)
            .where(gate_results.c.run_id == run_id)
            .order_by(gate_results.c.job_id, gate_results.c.idx)
        )
        with self.engine.connect() as conn:
            return [GateRecord(**r._asdict()) for r in conn.execute(query)]

    def list_runs(self, *, pipeline: str | None = None, limit: int = 20) -> list[RunRecord]:
        """Newest runs first."""
        import sqlalchemy as sa

        from buildyard.store.schema import runs

        query = sa.select(runs).order_by(runs.c.created_at.desc()).limit(limit)
        if pipeline:
            query = query.where(runs.c.pipeline == pipeline)
        with self.engine.connect() as conn:
            return [RunRecord(**row._asdict()) for row in conn.execute(query)]

    def get_run(self, ref: str | None, *, pipeline: str | None = None) -> RunRecord:
        """A run by number (``N`` or ``PIPELINE#N``), id or id prefix (latest run when ``ref`` is None
        or 'last'). A bare number that several pipelines of this history have is refused as ambiguous."""
        if ref is not None and "#" in ref:
            pipeline, _, ref = ref.rpartition("#")
        if self.raw is not None and ref is not None and len(ref) == RUN_ID_LENGTH:
            found = self.raw.select("runs", id=ref)
            if found and pipeline in (None, found[0]["pipeline"]):
                return RunRecord(**found[0])
        import sqlalchemy as sa

        from buildyard.store.schema import runs

        query = sa.select(runs).order_by(runs.c.created_at.desc())
        if pipeline:
            query = query.where(runs.c.pipeline == pipeline)
        if ref in (None, "last", "latest"):
            query = query.limit(1)
        elif ref.isdigit():
            query = query.where(runs.c.number == int(ref)).limit(2)
        else:
            query = query.where(runs.c.id.startswith(ref, autoescape=True)).limit(2)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            what = "no runs recorded yet" if ref in (None, "last", "latest") else f"no run '{ref}'"
            raise NotFoundError(f"{what} (see 'buildyard history')")
        if len(rows) > 1 and ref is not None and ref.isdigit():
            names = " and ".join(sorted({r.pipeline for r in rows}))
            raise NotFoundError(
                f"run #{ref} is ambiguous: pipelines {names} both have one; give PIPELINE#{ref}"
                f" (e.g. {rows[0].pipeline}#{ref})"
            )
        if len(rows) > 1:
            raise NotFoundError(f"run id prefix '{ref}' is ambiguous; give more characters")
        return RunRecord(**rows[0]._asdict())

    def jobs(self, run_id: str) -> list[JobRecord]:
        """Job rows of a run, in the order they were planned."""
        import sqlalchemy as sa

        from buildyard.store.schema import jobs

        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(jobs).where(jobs.c.run_id == run_id).order_by(sa.text("rowid"))
                if self.is_sqlite
                else sa.select(jobs).where(jobs.c.run_id == run_id).order_by(jobs.c.ready_at)
            )
            return [JobRecord(**r._asdict()) for r in rows]

    def steps(self, run_id: str, job_id: str | None = None) -> list[StepRecord]:
        """Step rows of a run (or of one job)."""
        import sqlalchemy as sa

        from buildyard.store.schema import steps

        query = sa.select(steps).where(steps.c.run_id == run_id).order_by(steps.c.job_id, steps.c.idx)
        if job_id is not None:
            query = query.where(steps.c.job_id == job_id)
        with self.engine.connect() as conn:
            return [StepRecord(**r._asdict()) for r in conn.execute(query)]

    def durations(self, pipeline: str, limit_runs: int = 5) -> dict[str, float]:
        """Mean duration of each job instance over the last successful runs of ``pipeline``."""
        if self.raw is not None:
            return self.raw.durations(pipeline, limit_runs)
        import sqlalchemy as sa

        from buildyard.store.schema import jobs, runs

        recent = (
            sa.select(runs.c.id)
            .where(runs.c.pipeline == pipeline, runs.c.status.in_(("success", "failed")))
            .order_by(runs.c.created_at.desc())
            .limit(limit_runs)
            .subquery()
        )
        query = (
            sa.select(jobs.c.id, sa.func.avg(jobs.c.duration_s))
            .where(jobs.c.run_id.in_(sa.select(recent.c.id)), jobs.c.status == "success")
            .group_by(jobs.c.id)
        )
        with self.engine.connect() as conn:
            return {row[0]: float(row[1]) for row in conn.execute(query) if row[1] is not None}

    def close(self) -> None:
        """Close the direct connection and dispose of the connection pool."""
        if self.raw is not None:
            self.raw.close()
        if self._engine is not None:
            self._engine.dispose()


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///PATH`` URL (decoded as SQLAlchemy decodes it); "" for other URLs."""
    if not url.startswith("sqlite:///") or "?" in url:
        return ""
    return urllib.parse.unquote(url.removeprefix("sqlite:///"))


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
