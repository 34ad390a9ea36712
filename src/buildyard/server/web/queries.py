"""The dashboard's read queries over the history schema (SQLAlchemy Core, SQLite and PostgreSQL).

The ``History`` protocol offers what the engine and CLI need (newest runs, one run's jobs); the
dashboard also filters, pages by cursor and aggregates over thousands of runs, which it does here in
SQL so that a page reads only the rows it shows. Every query is bounded by a ``LIMIT`` or a time range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from buildyard.store.deployments import DeploymentRecord
from buildyard.store.history import JobRecord, RunRecord
from buildyard.store.schema import deployments, jobs, runs

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from buildyard.store.history import History

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
    """Distinct branches, events, statuses and triggers of runs created since ``since`` (filter menus)."""
    out: dict[str, list[str]] = {}
    with engine_of(history).connect() as conn:
        for name, column in (
            ("branch", runs.c.branch),
            ("event", runs.c.event),
            ("status", runs.c.status),
            ("who", runs.c.trigger),
        ):
            query = sa.select(column).where(runs.c.created_at >= since).distinct().order_by(column).limit(200)
            out[name] = [str(v) for v in conn.execute(query).scalars() if v]
    return out


def runs_since(history: History, since: float, *, branch: str = "", pipeline: str = "") -> list[RunRecord]:
    """Runs created since ``since``, oldest first (at most ``MAX_ROWS``, the newest ones)."""
    query = sa.select(runs).where(runs.c.created_at >= since)
    if branch:
        query = query.where(runs.c.branch == branch)
    if pipeline:
        query = query.where(runs.c.pipeline == pipeline)
    query = query.order_by(runs.c.created_at.desc()).limit(MAX_ROWS)
    with engine_of(history).connect() as conn:
        rows = [RunRecord(**r._asdict()) for r in conn.execute(query)]
    rows.reverse()
    return rows


def job_stats(history: History, since: float, *, pipeline: str = "") -> list[dict[str, Any]]:
    """Per job instance over the runs created since ``since``: count, mean/max duration, mean CPU
    seconds, peak RSS, cache hits and time saved."""
    query = (
        sa.select(
            jobs.c.id,
            sa.func.count().label("count"),
            sa.func.avg(jobs.c.duration_s).label("mean_s"),
            sa.func.max(jobs.c.duration_s).label("max_s"),
            sa.func.avg(jobs.c.cpu_seconds).label("cpu_s"),
            sa.func.max(jobs.c.peak_rss).label("peak_rss"),
            sa.func.sum(sa.case((jobs.c.cache_status == "hit", 1), else_=0)).label("hits"),
            sa.func.sum(sa.case((jobs.c.cache_status == "miss", 1), else_=0)).label("misses"),
            sa.func.sum(jobs.c.saved_s).label("saved_s"),
            sa.func.avg(jobs.c.queue_s).label("queue_s"),
        )
        .join(runs, runs.c.id == jobs.c.run_id)
        .where(runs.c.created_at >= since)
        .group_by(jobs.c.id)
        .order_by(sa.func.avg(jobs.c.duration_s).desc())
        .limit(MAX_ROWS)
    )
    if pipeline:
        query = query.where(runs.c.pipeline == pipeline)
    with engine_of(history).connect() as conn:
        return [dict(r._asdict()) for r in conn.execute(query)]


def job_durations(history: History, job_ids: Sequence[str], since: float) -> list[tuple[str, float, float]]:
    """``(job id, run created_at, duration)`` of the given job instances since ``since``, oldest first."""
    if not job_ids:
        return []
    query = (
        sa.select(jobs.c.id, runs.c.created_at, jobs.c.duration_s)
        .join(runs, runs.c.id == jobs.c.run_id)
        .where(runs.c.created_at >= since, jobs.c.id.in_(list(job_ids)), jobs.c.duration_s.is_not(None))
        .order_by(runs.c.created_at)
        .limit(MAX_ROWS)
    )
    with engine_of(history).connect() as conn:
        return [(str(r[0]), float(r[1]), float(r[2])) for r in conn.execute(query)]


def jobs_of(history: History, run_id: str) -> list[JobRecord]:
    """The job rows of a run (the store's own query, in planned order)."""
    return history.jobs(run_id)


def deployments_since(history: History, since: float) -> list[DeploymentRecord]:
    """Deployments started since ``since``, oldest first (at most ``MAX_ROWS``)."""
    query = (
        sa.select(deployments, runs.c.number.label("run_number"), runs.c.created_at.label("run_created"))
        .join(runs, runs.c.id == deployments.c.run_id, isouter=True)
        .where(deployments.c.started_at >= since)
        .order_by(deployments.c.id.desc())
        .limit(MAX_ROWS)
    )
    out: list[DeploymentRecord] = []
    with engine_of(history).connect() as conn:
        for r in conn.execute(query):
            data = r._asdict()
            data.pop("run_created")
            out.append(DeploymentRecord(**data))
    out.reverse()
    return out


def run_created(history: History, run_ids: Sequence[str]) -> dict[str, float]:
    """When each of the given runs was created."""
    if not run_ids:
        return {}
    query = sa.select(runs.c.id, runs.c.created_at).where(runs.c.id.in_(sorted(set(run_ids))))
    with engine_of(history).connect() as conn:
        return {str(r[0]): float(r[1]) for r in conn.execute(query)}
