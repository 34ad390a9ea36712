"""``/metrics`` in the Prometheus exposition format.

The figures come from the stores (history of each project, the server's queue), not from counters
in this process: runs execute in child processes and the server may restart, and the history is the
truth. Computing them scans the history, so the text is rebuilt in the background at most every
``serve --metrics-refresh`` seconds (15; 0: on every scrape) and a scrape is answered from the last
one (the first scrape waits for it).

Labels are bounded: pipeline names, statuses (enums), environments and gates of the configured
projects; past ``MAX_LABEL_VALUES`` distinct values a label reads ``other``. No run ids, no shas.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from buildyard.server.queue import HOLDING, WANTING

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from buildyard.server.state import ServerState

_TRANSIENT = frozenset({"pending", "running", "waiting", "retrying"})
MAX_LABEL_VALUES = 100
RUN_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
JOB_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
WAIT_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)

router = APIRouter(include_in_schema=False)


class _Bounded:
    """Maps label values to themselves until too many were seen, then to ``other``."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, value: str | None) -> str:
        text = (value or "")[:100]
        if text in self.seen:
            return text
        if len(self.seen) >= MAX_LABEL_VALUES:
            return "other"
        self.seen.add(text)
        return text


class Collector:
    """A prometheus_client collector reading the server's stores."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        """Every metric family (see the module docstring)."""
        from prometheus_client.core import (  # noqa: PLC0415
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        from buildyard.store.schema import deployments, gate_results, jobs, runs  # noqa: PLC0415

        pipeline_label = _Bounded()
        runs_total = CounterMetricFamily(
            "buildyard_runs", "Runs by pipeline and final status.", labels=["pipeline", "status"]
        )
        jobs_total = CounterMetricFamily(
            "buildyard_jobs", "Jobs by pipeline and status.", labels=["pipeline", "status"]
        )
        cache = CounterMetricFamily(
            "buildyard_cache_lookups",
            "Job cache lookups by pipeline and result (hit, miss).",
            labels=["pipeline", "result"],
        )
        saved = CounterMetricFamily(
            "buildyard_cache_saved_seconds", "Job time saved by cache hits.", labels=["pipeline"]
        )
        gate_failures = CounterMetricFamily(
            "buildyard_gate_failures",
            "Quality gate failures by pipeline and gate.",
            labels=["pipeline", "gate"],
        )
        deploys = CounterMetricFamily(
            "buildyard_deployments",
            "Deployments by environment and outcome.",
            labels=["environment", "outcome"],
        )
        run_hist = HistogramMetricFamily(
            "buildyard_run_duration_seconds", "Run durations.", labels=["pipeline"]
        )
        job_hist = HistogramMetricFamily(
            "buildyard_job_duration_seconds", "Job durations.", labels=["pipeline"]
        )
        wait_hist = HistogramMetricFamily(
            "buildyard_queue_wait_seconds", "Seconds from queued to started, per run.", labels=["project"]
        )
        cache_bytes = GaugeMetricFamily(
            "buildyard_cache_stored_bytes", "Bytes stored in the project's job cache.", labels=["project"]
        )
        env_label, gate_label = _Bounded(), _Bounded()
        for project in self.state.config.projects:
            history = self.state.sql_history(project.name)
            with history.engine.connect() as conn:
                for pipeline, status, count in conn.execute(
                    sa.select(runs.c.pipeline, runs.c.status, sa.func.count()).group_by(
                        runs.c.pipeline, runs.c.status
                    )
                ):
                    if status != "running":
                        runs_total.add_metric([pipeline_label(pipeline), status], count)
                job_rows = conn.execute(
                    sa.select(
                        runs.c.pipeline,
                        jobs.c.status,
                        jobs.c.cache_status,
                        sa.func.count(),
                        sa.func.sum(jobs.c.saved_s),
                    )
                    .join_from(jobs, runs, jobs.c.run_id == runs.c.id)
                    .group_by(runs.c.pipeline, jobs.c.status, jobs.c.cache_status)
                ).all()
                per_status: dict[tuple[str, str], int] = {}
                per_cache: dict[tuple[str, str], int] = {}
                per_saved: dict[str, float] = {}
                for pipeline, status, cache_status, count, saved_s in job_rows:
                    name = pipeline_label(pipeline)
                    if status in _TRANSIENT:
                        continue  # counted once final: a counter never goes down
                    per_status[(name, status)] = per_status.get((name, status), 0) + count
                    if cache_status in ("hit", "miss"):
                        per_cache[(name, cache_status)] = per_cache.get((name, cache_status), 0) + count
                    if cache_status == "hit":
                        per_saved[name] = per_saved.get(name, 0.0) + float(saved_s or 0.0)
                for (name, status), count in per_status.items():
                    jobs_total.add_metric([name, status], count)
                for (name, result), count in per_cache.items():
                    cache.add_metric([name, result], count)
                for name, value in per_saved.items():
                    saved.add_metric([name], value)
                for pipeline, gate, count in conn.execute(
                    sa.select(runs.c.pipeline, gate_results.c.gate, sa.func.count())
                    .join_from(gate_results, runs, gate_results.c.run_id == runs.c.id)
                    .where(gate_results.c.status == "failed")
                    .group_by(runs.c.pipeline, gate_results.c.gate)
                ):
                    gate_failures.add_metric([pipeline_label(pipeline), gate_label(gate)], count)
                for environment, status, count in conn.execute(
                    sa.select(deployments.c.environment, deployments.c.status, sa.func.count()).group_by(
                        deployments.c.environment, deployments.c.status
                    )
                ):
                    deploys.add_metric([env_label(environment), status], count)
                _histogram(
                    conn, run_hist, runs.c.duration_s, runs.c.pipeline, RUN_BUCKETS, runs, pipeline_label
                )
                _histogram(
                    conn,
                    job_hist,
                    jobs.c.duration_s,
                    runs.c.pipeline,
                    JOB_BUCKETS,
                    sa.join(jobs, runs, jobs.c.run_id == runs.c.id),
                    pipeline_label,
                )
            cas = project.home / "cas"
            if cas.is_dir():
                from buildyard.cache.store import CacheStore  # noqa: PLC0415

                cache_bytes.add_metric(
                    [project.name], sum(size for _d, size, _m in CacheStore(cas).cas.iter_blobs())
                )
        from buildyard.store.serverstate import run_queue  # noqa: PLC0415

        with self.state.engine.connect() as conn:
            wait = run_queue.c.started_at - run_queue.c.enqueued_at
            _histogram(
                conn,
                wait_hist,
                wait,
                run_queue.c.project,
                WAIT_BUCKETS,
                run_queue,
                _Bounded(),
                where=run_queue.c.started_at.is_not(None),
            )
        counts = self.state.run_queue.counts()
        running = GaugeMetricFamily("buildyard_runs_running", "Runs executing now.", labels=["project"])
        queued = GaugeMetricFamily(
            "buildyard_runs_queued",
            "Runs waiting for a runner now (queued, or approved and going on).",
            labels=["project"],
        )
        waiting = GaugeMetricFamily(
            "buildyard_runs_waiting", "Runs waiting for an approval now.", labels=["project"]
        )
        for project in self.state.config.projects:
            running.add_metric([project.name], sum(counts.get((project.name, s), 0) for s in HOLDING))
            queued.add_metric([project.name], sum(counts.get((project.name, s), 0) for s in WANTING))
            waiting.add_metric([project.name], counts.get((project.name, "waiting"), 0))
        yield from (
            runs_total,
            jobs_total,
            cache,
            saved,
            gate_failures,
            deploys,
            run_hist,
            job_hist,
            wait_hist,
            cache_bytes,
            running,
            queued,
            waiting,
        )


def _histogram(
    conn: Any,
    family: Any,
    column: Any,
    group: Any,
    buckets: tuple[float, ...],
    source: Any,
    label: _Bounded,
    *,
    where: Any = None,
) -> None:
    cols = [group, sa.func.count(column), sa.func.sum(column)]
    cols += [sa.func.sum(sa.case((column <= b, 1), else_=0)) for b in buckets]
    query = sa.select(*cols).select_from(source).where(column.is_not(None))
    if where is not None:
        query = query.where(where)
    for row in conn.execute(query.group_by(group)):
        name, count, total, *cumulative = row
        points = [(_le(b), int(c or 0)) for b, c in zip(buckets, cumulative, strict=True)]
        points.append(("+Inf", int(count)))
        family.add_metric([label(name)], points, float(total or 0.0))


def _le(bound: float) -> str:
    return repr(float(bound))


class Exposition:
    """The rendered text, rebuilt in the background (see the module docstring)."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.text = b""
        self.at = 0.0
        self._lock = threading.Lock()
        self._refreshing = False

    def warm(self) -> None:
        """Build the first text in the background now."""
        self._refreshing = True
        threading.Thread(target=self._refresh, name="metrics", daemon=True).start()

    def ready(self) -> bool:
        """Whether ``render`` answers at once, without I/O (a text exists, refreshed in the background)."""
        return bool(self.text) and self.state.config.metrics_refresh > 0

    def render(self) -> bytes:
        """The latest text (built now on the first call; refreshed in the background when old)."""
        if self.state.config.metrics_refresh <= 0:
            with self._lock:
                self._build()
            return self.text
        if not self.text:
            with self._lock:  # waits for a build in progress (warm) rather than starting another
                if not self.text:
                    self._build()
            return self.text
        if time.monotonic() - self.at > self.state.config.metrics_refresh and not self._refreshing:
            self._refreshing = True
            threading.Thread(target=self._refresh, name="metrics", daemon=True).start()
        return self.text

    def _refresh(self) -> None:
        try:
            with self._lock:
                self._build()
        finally:
            self._refreshing = False

    def _build(self) -> None:
        from prometheus_client import CollectorRegistry, generate_latest  # noqa: PLC0415

        registry = CollectorRegistry(auto_describe=False)
        registry.register(Collector(self.state))  # type: ignore[arg-type,unused-ignore]
        self.text = generate_latest(registry)
        self.at = time.monotonic()


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus exposition (any authenticated user; open servers answer everyone on loopback)."""
    from prometheus_client import CONTENT_TYPE_LATEST  # noqa: PLC0415

    from buildyard.server.auth import Role  # noqa: PLC0415
    from buildyard.server.common import require  # noqa: PLC0415

    require(request, Role.VIEWER)
    exposition: Exposition = request.app.state.exposition
    # on the event loop when it is only a copy: a scrape need not queue behind the dashboard's threads
    body = exposition.render() if exposition.ready() else await run_in_threadpool(exposition.render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
