"""The dashboard's read queries over the history schema (SQLAlchemy Core, SQLite and PostgreSQL).

The ``History`` protocol offers what the engine and CLI need (newest runs, one run's jobs); the
dashboard also filters, pages by cursor and aggregates over thousands of runs, which it does here in
SQL so that a page reads only the rows it shows. Every query is bounded by a ``LIMIT`` or a time range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import sqlalchemy as sa

from buildyard.store.deployments import DeploymentRecord
from buildyard.store.history import RunRecord
from buildyard.store.schema import deployments, jobs, runs

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from buildyard.store.history import History

_T = TypeVar("_T")

#: Most rows any one query returns (a page, a chart): the dashboard never reads a whole table.
MAX_ROWS = 20_000


def engine_of(history: History) -> Engine:
    """The SQLAlchemy engine behind a history store (``SqlHistory`` and the server's stores have one)."""
    engine = getattr(history, "engine", None)
    if engine is None:
        raise TypeError(f"{type(history).__name__} has no SQL engine for the dashboard's queries")
    return engine  # type: ignore[no-any-return]


@dataclass(frozen=True)
class RunFilter:
    """Which runs a runs page lists."""

    branch: str = ""
    event: str = ""
    status: str = ""
    who: str = ""  # the run's trigger (cli, api, a user name given by the server)
    pipeline: str = ""


@dataclass(frozen=True)
class Cursor:
    """Position after the last run of a page: runs are ordered by (created_at, id), newest first."""

    created_at: float
    run_id: str

    def encode(self) -> str:
        """The cursor as a URL-safe token."""
        return f"{self.created_at!r}_{self.run_id}"

    @staticmethod
    def decode(token: str) -> Cursor:
        """Parse a token made by ``encode``; ``ValueError`` with a one-line reason when it is not one."""
        at, sep, run_id = token.partition("_")
        if not sep or not run_id.isalnum() or len(run_id) > 64:
            raise ValueError("invalid cursor (use the 'next' link of the previous page)")
        try:
            created = float(at)
        except ValueError:
            raise ValueError("invalid cursor (use the 'next' link of the previous page)") from None
        return Cursor(created, run_id)


def list_runs(
    history: History, flt: RunFilter, *, limit: int, after: Cursor | None = None
) -> tuple[list[RunRecord], Cursor | None]:
    """One page of runs matching ``flt``, newest first, and the cursor of the next page (None at the end)."""
    query = sa.select(runs)
    for column, value in (
        (runs.c.branch, flt.branch),
        (runs.c.event, flt.event),
        (runs.c.status, flt.status),
        (runs.c.trigger, flt.who),
        (runs.c.pipeline, flt.pipeline),
    ):
        if value:
            query = query.where(column == value)
    if after is not None:
        query = query.where(
            sa.or_(
                runs.c.created_at < after.created_at,
                sa.and_(runs.c.created_at == after.created_at, runs.c.id < after.run_id),
            )
        )
    query = query.order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(limit + 1)
    with engine_of(history).connect() as conn:
        rows = [RunRecord(**r._asdict()) for r in conn.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (Cursor(rows[-1].created_at, rows[-1].id) if more and rows else None)


def filter_values(history: History, *, since: float) -> dict[str, list[str]]:
    """Distinct branches, events, statuses and triggers of runs created since the start of ``since``'s
    hour (filter menus): one scan of those runs, at most 200 values each, reused while the database
    is unchanged within that hour."""
    names = ("branch", "event", "status", "who")
    columns = (runs.c.branch, runs.c.event, runs.c.status, runs.c.trigger)
    hour = since // 3600 * 3600  # a moving ``since`` would never find its answer kept
    query = sa.select(*columns).where(runs.c.created_at >= hour).distinct().limit(MAX_ROWS)

    def scan(conn: Connection) -> dict[str, list[str]]:
        seen: tuple[set[str], ...] = (set(), set(), set(), set())
        for row in conn.execute(query):
            for values, value in zip(seen, row, strict=True):
                if value:
                    values.add(str(value))
        return {name: sorted(values)[:200] for name, values in zip(names, seen, strict=True)}

    with engine_of(history).connect() as conn:
        found = _while_unchanged(conn, ("filters", id(history), hour), lambda: scan(conn))
    return {name: list(values) for name, values in found.items()}


class RunPoint(NamedTuple):
    """What the charts need of a run."""

    created_at: float
    status: str
    duration_s: float | None
    queue_s: float | None


def run_points(
    history: History, since: float, *, until: float | None = None, branch: str = "", pipeline: str = ""
) -> list[RunPoint]:
    """``RunPoint`` of the runs created since ``since`` (and before ``until``), oldest first (at most
    ``MAX_ROWS``, the newest)."""
    query = sa.select(runs.c.created_at, runs.c.status, runs.c.duration_s, runs.c.queue_s).where(
        runs.c.created_at >= since
    )
    if until is not None:
        query = query.where(runs.c.created_at < until)
    if branch:
        query = query.where(runs.c.branch == branch)
    if pipeline:
        query = query.where(runs.c.pipeline == pipeline)
    query = query.order_by(runs.c.created_at.desc()).limit(MAX_ROWS)
    with engine_of(history).connect() as conn:
        rows = [RunPoint(*r) for r in conn.execute(query)]
    rows.reverse()
    return rows


def _day(engine: Engine, since: float, size: float = 86400) -> Any:
    """The period (UTC day) of a run's creation, counted from ``since`` (a column expression)."""
    days = (runs.c.created_at - since) / size
    # SQLite's CAST truncates (and has no floor() in every build); PostgreSQL's CAST rounds
    day = sa.cast(days, sa.Integer) if engine.dialect.name == "sqlite" else sa.func.floor(days)
    return day.label("day")


def fingerprints(
    history: History, since: float, *, size: float = 3600, branch: str = ""
) -> dict[int, tuple[Any, ...]]:
    """Per period of ``size`` seconds (index from ``since``) of the runs created since ``since``: a
    fingerprint that changes when a run of that period is added, removed, finishes or changes status
    or queue time, then whether some of them are unfinished (the last element: their jobs change).

    Reused while the database is unchanged (``_while_unchanged``): a view of an idle history does
    not aggregate the range's runs again. Do not mutate the result."""
    engine = engine_of(history)
    with engine.connect() as conn:
        return _while_unchanged(
            conn,
            ("fingerprints", id(history), since, size, branch),
            lambda: _fingerprints(conn, engine, since, size, branch),
        )


def _while_unchanged(conn: Connection, key: tuple[Any, ...], compute: Callable[[], _T]) -> _T:
    """``compute()``, kept with a SQLite connection under ``key`` and reused while the database is
    unchanged (``PRAGMA data_version``: commits of other connections; ``total_changes``: this one's);
    computed every time on other databases. Callers do not mutate the result."""
    if conn.dialect.name != "sqlite":
        return compute()
    version = (conn.exec_driver_sql("PRAGMA data_version").scalar(), _total_changes(conn))
    memo: dict[tuple[Any, ...], Any] = conn.connection.info.setdefault("buildyard_unchanged", {})
    hit = memo.get(key)
    if hit is not None and hit[0] == version:
        return hit[1]  # type: ignore[no-any-return]
    result = compute()
    if len(memo) >= 32:
        memo.clear()
    memo[key] = (version, result)
    return result


def _total_changes(conn: Connection) -> int:
    """Rows this SQLite connection changed since it was opened."""
    return int(conn.connection.dbapi_connection.total_changes)  # type: ignore[union-attr]


def _fingerprints(
    conn: Connection, engine: Engine, since: float, size: float, branch: str
) -> dict[int, tuple[Any, ...]]:
    day = _day(engine, since, size)
    query = (
        sa.select(
            day,
            sa.func.count(),
            sa.func.sum(runs.c.created_at),
            sa.func.max(runs.c.finished_at),
            sa.func.sum(runs.c.duration_s),
            sa.func.sum(runs.c.queue_s),
            sa.func.sum(sa.case((runs.c.status == "success", 1), else_=0)),
            sa.func.sum(sa.case((runs.c.status == "failed", 1), else_=0)),
            sa.func.count(runs.c.finished_at) < sa.func.count(),
        )
        .where(runs.c.created_at >= since)
        .group_by(day)
    )
    if branch:
        query = query.where(runs.c.branch == branch)
    return {int(r[0]): (*r[1:-1], bool(r[-1])) for r in conn.execute(query)}


def job_daily(
    history: History, since: float, *, until: float | None = None, branch: str = "", size: float = 86400
) -> list[dict[str, Any]]:
    """Per job instance and UTC day (index from ``since``; or period of ``size`` seconds) over the runs
    created since ``since`` (and before ``until``): sums and counts to aggregate from (one scan of the
    jobs of those runs)."""
    engine = engine_of(history)
    day = _day(engine, since, size)
    query = (
        sa.select(
            jobs.c.id,
            day,
            sa.func.count().label("count"),
            sa.func.sum(jobs.c.duration_s).label("dur_sum"),
            sa.func.count(jobs.c.duration_s).label("dur_n"),
            sa.func.max(jobs.c.duration_s).label("dur_max"),
            sa.func.sum(jobs.c.cpu_seconds).label("cpu_sum"),
            sa.func.count(jobs.c.cpu_seconds).label("cpu_n"),
            sa.func.max(jobs.c.peak_rss).label("peak_rss"),
            sa.func.sum(sa.case((jobs.c.cache_status == "hit", 1), else_=0)).label("hits"),
            sa.func.sum(sa.case((jobs.c.cache_status == "miss", 1), else_=0)).label("misses"),
            sa.func.sum(jobs.c.saved_s).label("saved_s"),
            sa.func.sum(jobs.c.queue_s).label("queue_sum"),
            sa.func.count(jobs.c.queue_s).label("queue_n"),
        )
        .join(runs, runs.c.id == jobs.c.run_id)
        .where(runs.c.created_at >= since)
        .group_by(jobs.c.id, day)
        .limit(MAX_ROWS)
    )
    if until is not None:
        query = query.where(runs.c.created_at < until)
    if branch:
        query = query.where(runs.c.branch == branch)
    if engine.dialect.name == "sqlite":
        # SQLite otherwise scans every job and looks its run up (one seek per job): telling it the
        # range is selective makes it walk the runs by date and their jobs by key, about twice as fast
        query = query.where(sa.func.likelihood(runs.c.created_at >= since, sa.literal_column("0.01")))
    with engine.connect() as conn:
        return [dict(r._asdict()) for r in conn.execute(query)]


def deployments_version(history: History, since: float) -> tuple[Any, ...]:
    """A fingerprint of the deployments started since ``since`` (changes when one is added, finishes,
    or changes status, e.g. is rolled back)."""
    query = sa.select(
        sa.func.count(),
        sa.func.max(deployments.c.id),
        sa.func.sum(deployments.c.finished_at),
        *(sa.func.sum(sa.case((deployments.c.status == s, 1), else_=0)) for s in ("success", "failed")),
        sa.func.sum(sa.func.coalesce(deployments.c.rollback_of, 0)),
    ).where(deployments.c.started_at >= since)
    with engine_of(history).connect() as conn:
        return tuple(conn.execute(query).one())


def deployments_since(history: History, since: float) -> tuple[list[DeploymentRecord], dict[str, float]]:
    """Deployments started since ``since``, oldest first (at most ``MAX_ROWS``), and when the run of
    each was created."""
    query = (
        sa.select(deployments, runs.c.number.label("run_number"), runs.c.created_at.label("run_created"))
        .join(runs, runs.c.id == deployments.c.run_id, isouter=True)
        .where(deployments.c.started_at >= since)
        .order_by(deployments.c.id.desc())
        .limit(MAX_ROWS)
    )
    out: list[DeploymentRecord] = []
    created: dict[str, float] = {}
    with engine_of(history).connect() as conn:
        for r in conn.execute(query):
            data = r._asdict()
            at = data.pop("run_created")
            if at is not None:
                created[str(data["run_id"])] = float(at)
            out.append(DeploymentRecord(**data))
    out.reverse()
    return out, created
