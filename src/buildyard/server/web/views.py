"""Runs, jobs, queue entries and deployments as JSON for the dashboard.

TODO(views): replace with the shared view model (``RunView``, ``JobView``…) once seam-history lands;
these small functions are the only place the dashboard turns store records into JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from buildyard.server.web.source import QueuedRun
    from buildyard.store.deployments import DeploymentRecord
    from buildyard.store.history import JobRecord, RunRecord


def run_json(r: RunRecord) -> dict[str, Any]:
    """A run as JSON."""  # TODO(views)
    return {
        "id": r.id,
        "number": r.number,
        "pipeline": r.pipeline,
        "status": r.status,
        "event": r.event,
        "ref": r.ref,
        "branch": r.branch,
        "tag": r.tag,
        "sha": r.sha,
        "trigger": r.trigger,
        "created_at": r.created_at,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "duration_s": r.duration_s,
        "queue_s": r.queue_s,
        "jobs_total": r.jobs_total,
        "message": r.message,
    }


def job_json(j: JobRecord) -> dict[str, Any]:
    """A job instance as JSON (its log path left out: logs are served by URL)."""  # TODO(views)
    return {
        "id": j.id,
        "job": j.job,
        "status": j.status,
        "stage": j.stage,
        "matrix": dict(j.matrix),
        "attempts": j.attempts,
        "exit_code": j.exit_code,
        "allow_failure": j.allow_failure,
        "ready_at": j.ready_at,
        "started_at": j.started_at,
        "finished_at": j.finished_at,
        "duration_s": j.duration_s,
        "queue_s": j.queue_s,
        "cpu_seconds": j.cpu_seconds,
        "peak_rss": j.peak_rss,
        "skip_reason": j.skip_reason,
        "message": j.message,
        "cache_status": j.cache_status,
        "saved_s": j.saved_s,
        "miss_reasons": list(j.miss_reasons),
    }


def queued_json(q: QueuedRun) -> dict[str, Any]:
    """A queue entry as JSON."""
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


def deployment_json(d: DeploymentRecord) -> dict[str, Any]:
    """A deployment as JSON."""
    return {
        "id": d.id,
        "environment": d.environment,
        "artifact": d.artifact,
        "version": d.version,
        "what": d.what,
        "run_id": d.run_id,
        "run_number": d.run_number,
        "job_id": d.job_id,
        "status": d.status,
        "started_at": d.started_at,
        "finished_at": d.finished_at,
        "url": d.url,
        "approved_by": d.approved_by,
        "rollback_of": d.rollback_of,
    }
