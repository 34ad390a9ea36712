"""The data of each dashboard view: pure functions of (source, parameters) → plain JSON-able dicts.

The HTML templates and the JSON endpoints render the same dict, so what a browser shows and what a
script reads cannot drift apart. Nothing here knows about HTTP or users; ``now`` is a parameter so
the tests can pin time. Reads are bounded: pages by cursor, charts by time range (``queries``).
"""

from __future__ import annotations

import contextlib
import math
import statistics
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from buildyard.errors import BuildyardError, NotFoundError
from buildyard.server.web import queries
from buildyard.server.web.dag import dag_of, gantt_of
from buildyard.server.web.queries import Cursor, RunFilter
from buildyard.server.web.rollups import (
    MAX_AGE_S,
    ROLLUPS,
    DayRollup,
    Rollups,
    day_summary,
    percentiles,
)
from buildyard.views import DeploymentView, Remote, RunView

if TYPE_CHECKING:
    from buildyard.server.web.source import DashboardSource, QueuedRun
    from buildyard.store.deployments import DeploymentRecord
    from buildyard.store.history import History, RunRecord

DAY = 86_400.0
PAGE_SIZE = 25
MAX_PAGE_SIZE = 200
FINAL_JOB = frozenset({"success", "failed", "timed_out", "skipped", "cached", "cancelled", "manual"})
FAILED = frozenset({"failed", "timed_out"})


# --- helpers ------------------------------------------------------------------------------------


def _project(source: DashboardSource, project: str) -> History:
    if project not in {p.name for p in source.projects()}:
        raise NotFoundError(f"no project '{project}'")
    return source.history(project)


def _run(history: History, ref: str) -> RunRecord:
    return history.get_run(ref)


def _run_json(run: RunRecord, project: str) -> dict[str, Any]:
    """A run (without its jobs) as the REST API and ``history --json`` give it."""
    return RunView.summary(run).to_json(Remote(project))


def _deployment_json(d: DeploymentRecord) -> dict[str, Any]:
    return DeploymentView.from_record(d).to_json()


def _queued_json(q: QueuedRun) -> dict[str, Any]:
    """A queue entry (not a run yet: the dashboard's own summary of it)."""
    return {
        "id": q.id,
        "project": q.project,
        "status": q.status,
        "event": q.event,
        "branch": q.branch,
        "sha": q.sha,
        "requested_by": q.requested_by,
        "enqueued_at": q.enqueued_at,
        "started_at": q.started_at,
        "run_id": q.run_id,
    }


# --- 1. projects --------------------------------------------------------------------------------


def projects_data(
    source: DashboardSource,
    *,
    names: Collection[str] | None = None,
    now: float | None = None,
    rollups: Rollups = ROLLUPS,
) -> dict[str, Any]:
    """Every project (or those in ``names``): last run on its default branch, success rate and median
    duration over the last 30 days (UTC days, today's included; from the metrics' day ``rollups``), a
    duration sparkline, and what is running and queued now."""
    now = time.time() if now is None else now
    since = (math.floor(now / DAY) - 29) * DAY
    queue = source.queue()
    out = []
    for p in source.projects():
        if names is not None and p.name not in names:
            continue
        history = source.history(p.name)
        fingerprint, rolled = rollups.days(history, since, 30)
        last, _ = queries.list_runs(history, RunFilter(branch=p.default_branch), limit=1)
        running, _ = queries.list_runs(history, RunFilter(status="running"), limit=20)
        out.append(
            {
                "name": p.name,
                "default_branch": p.default_branch,
                "last_run": _run_json(last[0], p.name) if last else None,
                **_thirty_days((id(rollups), id(history), since, fingerprint), rolled),
                "running": [_run_json(r, p.name) for r in running],
                "queued": [_queued_json(q) for q in queue if q.project == p.name],
            }
        )
    return {"projects": out}


_summary_cache: OrderedDict[tuple[Any, ...], tuple[float, dict[str, Any]]] = OrderedDict()


def _thirty_days(key: tuple[Any, ...], rolled: Sequence[DayRollup]) -> dict[str, Any]:
    """A project's 30-day figures from its day rollups, reused while ``key`` (its range and
    fingerprint) is unchanged, at most ``MAX_AGE_S``."""
    with _metrics_lock:
        hit = _summary_cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < MAX_AGE_S:
            return hit[1]
    durations = [v for day in rolled for v in day.succeeded_durations]
    finished = sum(day.finished for day in rolled)
    summary = {
        "runs_30d": sum(len(day.points) for day in rolled),
        "success_rate_30d": sum(day.succeeded for day in rolled) / finished if finished else None,
        "median_duration_s": statistics.median(durations) if durations else None,
        "sparkline": durations[-30:],
    }
    with _metrics_lock:
        _summary_cache[key] = (time.monotonic(), summary)
        while len(_summary_cache) > 32:
            _summary_cache.popitem(last=False)
    return summary


# --- 2. runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunsParams:
    """Parameters of the runs view."""

    flt: RunFilter = field(default_factory=RunFilter)
    cursor: str = ""
    limit: int = PAGE_SIZE


def runs_data(
    source: DashboardSource, project: str, params: RunsParams, *, now: float | None = None
) -> dict[str, Any]:
    """One page of a project's runs (filtered, newest first) with the cursor of the next page, the
    values the filters offer, and the project's queue."""
    now = time.time() if now is None else now
    history = _project(source, project)
    after = Cursor.decode(params.cursor) if params.cursor else None
    limit = min(max(params.limit, 1), MAX_PAGE_SIZE)
    page, following = queries.list_runs(history, params.flt, limit=limit, after=after)
    flt = params.flt
    return {
        "project": project,
        "filters": {"branch": flt.branch, "event": flt.event, "status": flt.status, "who": flt.who},
        "choices": queries.filter_values(history, since=now - 90 * DAY),
        "runs": [_run_json(r, project) for r in page],
        "next_cursor": following.encode() if following else None,
        "queue": [_queued_json(q) for q in source.queue(project)],
        "live": any(r.status == "running" for r in page) or bool(source.queue(project)),
    }


# --- 3. run -------------------------------------------------------------------------------------


def run_data(source: DashboardSource, project: str, ref: str) -> dict[str, Any]:
    """One run: its jobs, the DAG with the critical path, the Gantt timeline, gate results, the
    artifacts it published and the deployments it made, and the jobs waiting for an approval.

    ``run`` (without its jobs) and ``jobs`` are the objects of the REST API's run (``buildyard.views``,
    shown ``Remote``); the rest is the dashboard's own."""
    _project(source, project)
    view = source.run_view(project, ref)
    run = view.record
    jobs = [j.record for j in view.jobs or ()]
    info = next(p for p in source.projects() if p.name == project)
    remote = Remote(project)
    return {
        "project": project,
        "run": RunView.summary(run).to_json(remote),
        "jobs": [j.to_json(remote) for j in view.jobs or ()],
        "dag": dag_of(run, jobs),
        "gantt": gantt_of(run, jobs),
        "gates": [g.to_json(with_job=True) for j in view.jobs or () for g in j.gates],
        "artifacts": _artifacts_of_run(info.root, run.id),
        "deployments": [  # newest first
            d.to_json()
            for d in sorted((d for j in view.jobs or () for d in j.deployments), key=lambda d: -d.id)
        ],
        "waiting": [j.id for j in jobs if j.status == "waiting"],
        "live": run.status == "running",
    }


def _artifacts_of_run(root: Any, run_id: str) -> list[dict[str, Any]]:
    from buildyard.server.web.artifacts import artifacts_of_run  # noqa: PLC0415 - the repository is optional

    return artifacts_of_run(root, run_id)


# --- 4. job log ---------------------------------------------------------------------------------


def log_data(
    source: DashboardSource, project: str, ref: str, job_id: str, *, offset: int | None = None
) -> dict[str, Any]:
    """A window of a job's masked log (the tail by default, or from byte ``offset``), rendered."""
    from buildyard.server.web.logview import page_of_bytes, read_page  # noqa: PLC0415

    _project(source, project)
    view = source.run_view(project, ref)
    run = view.record
    found = next((j for j in view.jobs or () if j.id == job_id), None)
    if found is None:
        raise NotFoundError(f"run #{run.number} has no job '{job_id}'")
    job = found.record
    path = source.log_file(project, run.id, job.id)
    live = job.status not in FINAL_JOB
    remote = Remote(project)
    base: dict[str, Any] = {
        "project": project,
        "run": RunView.summary(run).to_json(remote),
        "job": found.to_json(remote),  # as in the run's page and the REST API
        "live": live,
    }
    cached_log = None
    if path is None and job.cache_status == "hit" and job.cache_key:
        cached_log = _cached_log(source, project, job.cache_key)
    if path is None and cached_log is None:
        return {**base, "available": False, "size": 0, "start": 0, "end": 0, "first_line": 1, "lines": []}
    page = read_page(path, offset=offset, live=live) if path is not None else page_of_bytes(cached_log or b"")
    return {
        **base,
        "available": True,
        "from_cache": path is None,
        "size": page.size,
        "start": page.start,
        "end": page.end,
        "first_line": page.first_line,
        "next_line": page.first_line + len(page.lines),
        "truncated_before": page.truncated_before,
        "lines": [{"n": ln.number, "text": ln.text, "html": ln.html} for ln in page.lines],
    }


def cached_job_log(source: DashboardSource, project: str, run_id: str, job_id: str) -> bytes | None:
    """The log of a job restored from the cache (None for a job that was not, or whose entry is gone)."""
    history = _project(source, project)
    job = next((j for j in history.jobs(run_id) if j.id == job_id), None)
    if job is None or job.cache_status != "hit" or not job.cache_key:
        return None
    return _cached_log(source, project, job.cache_key)


def _cached_log(source: DashboardSource, project: str, key: str) -> bytes | None:
    """The log a cache hit restored (stored with the cache entry, not copied into the run)."""
    from buildyard.cache.api import entry_log  # noqa: PLC0415 - only for cached jobs

    info = next(p for p in source.projects() if p.name == project)
    try:
        return entry_log(info.root, key)
    except (OSError, BuildyardError):
        return None


# --- 5. metrics ---------------------------------------------------------------------------------


def dora(deployments: Sequence[DeploymentRecord], created: Mapping[str, float], days: int) -> dict[str, Any]:
    """The four DORA measures over ``deployments`` (oldest first) in a window of ``days``:
    deployment frequency (successful deployments a day), lead time for changes (run created → deployed,
    median; the run's commit is its change), change failure rate (failed or rolled-back deployments /
    all finished ones) and time to restore (a failure → the next success in the same environment,
    median)."""
    finished = [d for d in deployments if d.status != "running"]
    good = [d for d in finished if d.status in ("success", "rolled_back")]
    bad = [d for d in finished if d.status == "failed" or d.rollback_of is not None]
    lead = [
        d.finished_at - created[d.run_id]
        for d in good
        if d.finished_at is not None and d.run_id in created and d.rollback_of is None
    ]
    restore: list[float] = []
    open_failure: dict[str, float] = {}
    for d in finished:
        end = d.finished_at or d.started_at
        if d.status == "failed":
            open_failure.setdefault(d.environment, end)
        elif d.status in ("success", "rolled_back") and d.environment in open_failure:
            restore.append(end - open_failure.pop(d.environment))
    return {
        "deployments": len(finished),
        "deployment_frequency_per_day": len(good) / days if days else None,
        "lead_time_s": statistics.median(lead) if lead else None,
        "change_failure_rate": len(bad) / len(finished) if finished else None,
        "time_to_restore_s": statistics.median(restore) if restore else None,
    }


def _job_table(
    daily: Sequence[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, list[list[float]]]]:
    """Per job totals and its mean duration per day, from ``queries.job_daily`` rows."""
    by_day: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for row in daily:
        by_day[int(row["day"])].append(row)
    return _job_table_of_days(sorted(by_day.items()))


_Sums = tuple[dict[str, dict[str, Any]], dict[str, list[list[float]]]]
_settled_cache: OrderedDict[tuple[Any, ...], _Sums] = OrderedDict()


def _job_table_of_days(
    daily: Sequence[tuple[int, Sequence[Mapping[str, Any]]]], settled_key: tuple[Any, ...] | None = None
) -> tuple[list[dict[str, Any]], dict[str, list[list[float]]]]:
    """``_job_table`` from (day, that day's rows) in ascending days: each job's sums run in day
    order, rows are not copied. With ``settled_key`` (naming every day but the last), the sums of
    those days are reused while it is unchanged: a run finishing today adds today's rows only."""
    totals: dict[str, dict[str, Any]] = {}
    trend: dict[str, list[list[float]]] = defaultdict(list)
    if settled_key is not None and len(daily) > 1:
        with _metrics_lock:
            settled = _settled_cache.get(settled_key)
            if settled is not None:
                _settled_cache.move_to_end(settled_key)
        if settled is None:
            settled = ({}, defaultdict(list))
            for day, rows in daily[:-1]:
                for row in rows:
                    _add_row(settled[0], settled[1], day, row)
            with _metrics_lock:
                _settled_cache[settled_key] = settled
                while len(_settled_cache) > 8:
                    _settled_cache.popitem(last=False)
        totals = {job: dict(sums) for job, sums in settled[0].items()}  # the last day adds to copies
        trend.update((job, list(points)) for job, points in settled[1].items())
        daily = daily[-1:]
    for day, rows in daily:
        for row in rows:
            _add_row(totals, trend, day, row)
    table = [
        {
            "id": t["id"],
            "count": t["count"],
            "mean_s": t["dur_sum"] / t["dur_n"] if t["dur_n"] else None,
            "max_s": t["max_s"],
            "cpu_s": t["cpu_sum"] / t["cpu_n"] if t["cpu_n"] else None,
            "peak_rss": t["peak_rss"],
            "queue_s": t["queue_sum"] / t["queue_n"] if t["queue_n"] else None,
            "hits": t["hits"],
            "misses": t["misses"],
            "saved_s": t["saved_s"],
        }
        for t in sorted(totals.values(), key=lambda t: t["id"])  # ties of the mean in id order
    ]
    table.sort(key=lambda j: -(j["mean_s"] or 0.0))
    return table, trend


def _add_row(
    totals: dict[str, dict[str, Any]], trend: dict[str, list[list[float]]], day: int, row: Mapping[str, Any]
) -> None:
    """Add one job's row of day ``day`` to its totals and its trend."""
    t = totals.get(row["id"])
    if t is None:
        t = totals[row["id"]] = {
            "id": row["id"],
            "count": 0,
            "dur_sum": 0.0,
            "dur_n": 0,
            "max_s": None,
            "cpu_sum": 0.0,
            "cpu_n": 0,
            "peak_rss": None,
            "hits": 0,
            "misses": 0,
            "saved_s": 0.0,
            "queue_sum": 0.0,
            "queue_n": 0,
        }
    for key in ("count", "dur_n", "cpu_n", "hits", "misses", "queue_n"):
        t[key] += int(row[key] or 0)
    for key in ("dur_sum", "cpu_sum", "saved_s", "queue_sum"):
        t[key] += float(row[key] or 0.0)
    for key, value in (("max_s", row["dur_max"]), ("peak_rss", row["peak_rss"])):
        if value is not None and (t[key] is None or value > t[key]):
            t[key] = value
    if row["dur_n"]:
        trend[row["id"]].append([float(day), float(row["dur_sum"]) / int(row["dur_n"])])


_metrics_cache: OrderedDict[tuple[Any, ...], tuple[float, dict[str, Any]]] = OrderedDict()
_metrics_lock = threading.Lock()


def metrics_data(
    source: DashboardSource,
    project: str,
    *,
    days: int = 30,
    branch: str = "",
    now: float | None = None,
    rollups: Rollups = ROLLUPS,
) -> dict[str, Any]:
    """Trends over the last ``days``: run duration p50/p95, success rate, queue time, cache hit rate
    and time saved, CPU seconds and peak RSS per job, the 10 slowest jobs with their daily trend, DORA.

    Summed from per-day ``rollups`` (only the days whose runs changed are read again); the whole
    result is reused while no day changed, at most ``rollups.MAX_AGE_S``."""
    now = time.time() if now is None else now
    days = min(max(days, 1), 365)
    history = _project(source, project)
    since = (math.floor(now / DAY) - days + 1) * DAY  # whole UTC days, today last
    fingerprint, rolled = rollups.days(history, since, days, branch=branch)
    key = (id(rollups), id(history), project, days, branch, since, fingerprint)
    with _metrics_lock:
        hit = _metrics_cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < MAX_AGE_S:
            return hit[1]
    result = _metrics(history, project, days=days, branch=branch, since=since, rolled=rolled)
    with _metrics_lock:
        _metrics_cache[key] = (time.monotonic(), result)
        while len(_metrics_cache) > 32:
            _metrics_cache.popitem(last=False)
    return result


def _metrics(
    history: History, project: str, *, days: int, branch: str, since: float, rolled: Sequence[DayRollup]
) -> dict[str, Any]:
    # each day's values are sorted: sorting their concatenation merges 30 runs (Timsort), cheap
    duration_p50, duration_p95 = percentiles([v for day in rolled for v in day.durations], 0.5, 0.95)
    queue_p50, queue_p95 = percentiles([v for day in rolled for v in day.queue], 0.5, 0.95)
    finished = sum(day.finished for day in rolled)
    by_day = {int((day.start - since) // DAY): day.summary for day in rolled}
    settled_key = (
        id(history),
        project,
        branch,
        since,
        tuple((day.start, day.at, day.fingerprint) for day in rolled[:-1]),
    )
    table, trend = _job_table_of_days(
        [(int((day.start - since) // DAY), day.jobs) for day in rolled], settled_key=settled_key
    )
    hits = sum(j["hits"] for j in table)
    misses = sum(j["misses"] for j in table)
    return {
        "project": project,
        "days": days,
        "branch": branch,
        "since": since,
        "runs": sum(len(day.points) for day in rolled),
        "duration_p50_s": duration_p50,
        "duration_p95_s": duration_p95,
        "success_rate": sum(day.succeeded for day in rolled) / finished if finished else None,
        "queue_p50_s": queue_p50,
        "queue_p95_s": queue_p95,
        "daily": [by_day.get(d) or day_summary(since + d * DAY, ()) for d in range(days)],
        "cache": {
            "hits": hits,
            "misses": misses,
            "hit_rate": hits / (hits + misses) if hits + misses else None,
            "saved_s": sum(j["saved_s"] for j in table),
        },
        "jobs": table[:200],
        "slowest": [
            {
                "id": j["id"],
                "count": j["count"],
                "mean_s": j["mean_s"],
                "max_s": j["max_s"],
                "trend": [[since + day * DAY, mean] for day, mean in trend.get(j["id"], [])],
            }
            for j in table[:10]
            if j["mean_s"] is not None
        ],
        "dora": _dora_since(history, since, days),
    }


def warm(source: DashboardSource) -> threading.Thread:
    """Compute every project's 30-day rollups in a background thread now (a first view of the projects
    or metrics page need not wait for a cold read of a large history); errors are left to the views."""

    def run() -> None:
        with contextlib.suppress(Exception):  # a view computes it again and reports what fails
            projects_data(source)

    thread = threading.Thread(target=run, name="dashboard-warm", daemon=True)
    thread.start()
    return thread


_dora_cache: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()


def _dora_since(history: History, since: float, days: int) -> dict[str, Any]:
    """``dora`` of the deployments since ``since``, reused while they are unchanged."""
    key = (id(history), since, days, queries.deployments_version(history, since))
    with _metrics_lock:
        hit = _dora_cache.get(key)
    if hit is not None:
        return hit
    result = dora(*queries.deployments_since(history, since), days)
    with _metrics_lock:
        _dora_cache[key] = result
        while len(_dora_cache) > 32:
            _dora_cache.popitem(last=False)
    return result


def _test_name(test: tuple[str, str, str]) -> str:
    """``classname::name`` (as the flaky and slowest lists name a test)."""
    _, classname, name = test
    return f"{classname}::{name}" if classname else name


# --- 6. tests -----------------------------------------------------------------------------------


def tests_data(
    source: DashboardSource,
    project: str,
    *,
    days: int = 14,
    run_ref: str = "",
    test: str = "",
    now: float | None = None,
) -> dict[str, Any]:
    """Flaky tests, slowest tests, the failures of one run (the latest by default) split into new and
    known against the previous run of its branch, and one test's history (``test``)."""
    import datetime as dt  # noqa: PLC0415

    from buildyard.engine.analytics import convert  # noqa: PLC0415
    from buildyard.gates import analytics  # noqa: PLC0415

    now = time.time() if now is None else now
    days = min(max(days, 1), 365)
    history = _project(source, project)
    results = convert(history.tests_since(now - days * DAY)[-queries.MAX_ROWS :])
    flaky = analytics.find_flaky(
        results, now=dt.datetime.fromtimestamp(now, dt.UTC), window=dt.timedelta(days=days)
    )
    slow = analytics.slowest(results, limit=20)
    triage: dict[str, Any] | None = None
    try:
        run = _run(history, run_ref or "last")
    except NotFoundError:
        run = None
    if run is not None:
        current = [r for r in results if r.run_id == run.id]
        earlier = [r for r in results if r.run_id != run.id and r.time.timestamp() < run.created_at]
        baseline_id = earlier[-1].run_id if earlier else ""
        baseline = [r for r in earlier if r.run_id == baseline_id]
        split = analytics.triage_failures(current, baseline)
        triage = {
            "run": _run_json(run, project),
            "baseline_run_id": baseline_id or None,
            "tests": len({r.identity for r in current}),
            "new": [_test_name(t) for t in split.new],
            "known": [_test_name(t) for t in split.known],
            "fixed": [_test_name(t) for t in split.fixed],
        }
    one = (
        [
            {
                "test": _test_name(r.identity),
                "outcome": str(r.outcome),
                "duration": r.duration,
                "attempt": r.attempt,
                "commit": r.commit,
                "run_id": r.run_id,
                "at": r.time.timestamp(),
            }
            for r in analytics.history_of(results, test)[:200]
        ]
        if test
        else []
    )
    return {
        "project": project,
        "days": days,
        "executions": len(results),
        "flaky": [
            {
                "test": f.display_name,
                "commits": list(f.commits),
                "passes": f.passes,
                "failures": f.failures,
                "last_evidence": f.last_evidence.timestamp(),
            }
            for f in flaky
        ],
        "slowest": [
            {"test": s.display_name, "median_s": s.median, "max_s": s.maximum, "runs": s.count} for s in slow
        ],
        "triage": triage,
        "test": test,
        "history": one,
    }


# --- 7. artifacts and deployments --------------------------------------------------------------


def artifacts_data(source: DashboardSource, project: str, *, limit: int = 50) -> dict[str, Any]:
    """Published versions (channel, signature verified or not) and each environment's current version,
    deployment history and the deployment jobs waiting for an approval."""
    from buildyard.server.web.artifacts import versions  # noqa: PLC0415

    history = _project(source, project)
    info = next(p for p in source.projects() if p.name == project)
    recent = history.deployments(limit=500)
    environments: dict[str, list[DeploymentRecord]] = defaultdict(list)
    for d in recent:
        environments[d.environment].append(d)
    envs = []
    for name in sorted(environments):
        items = environments[name]
        current = next((d for d in items if d.status == "success"), None)
        envs.append(
            {
                "name": name,
                "current": _deployment_json(current) if current else None,
                "history": [_deployment_json(d) for d in items[:20]],
            }
        )
    waiting: list[dict[str, Any]] = []
    running, _ = queries.list_runs(history, RunFilter(status="running"), limit=50)
    for r in running:
        waiting.extend(
            {"run": _run_json(r, project), "job": j.id} for j in history.jobs(r.id) if j.status == "waiting"
        )
    try:
        found = versions(info.root, limit=limit)
    except BuildyardError as exc:
        found = {"versions": [], "error": str(exc)}
    return {"project": project, **found, "environments": envs, "waiting": waiting}


def artifact_document(source: DashboardSource, project: str, ref: str, kind: str) -> dict[str, Any]:
    """The SBOM (``kind`` "sbom") or provenance statement ("provenance") of ``name@version``."""
    from buildyard.server.web.artifacts import document  # noqa: PLC0415

    _project(source, project)
    info = next(p for p in source.projects() if p.name == project)
    return document(info.root, ref, kind)
