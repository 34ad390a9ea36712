"""One view model of runs, their jobs, steps, gates and deployments: what every face shows.

The CLI's ``--json`` outputs (``run``, ``show``, ``history``, ``explain``, ``deploy history``), the
REST API and the dashboard templates all serialise these views (``to_json``); no face builds JSON by
hand. Views are built from history records alone (``RunView.from_records``), so one run is one object
wherever it is shown: ``run --json`` reads the run it just recorded back like ``show --json`` does.
Statuses are enums here; strings appear only inside the store and in JSON.

This module imports the core (``model``) and the store's records, never the engine or a face, so the
server can use it without loading the engine.

JSON shapes (kept from the outputs that came before the views, so scripts keep working): a run has
every stored field plus ``run_id`` (= ``id``) and, when its jobs were loaded, ``jobs``; a job every
stored field plus ``name`` (= ``id``), ``cache`` (= ``cache_status``), ``log`` (its log file when it
exists: a cache hit's log stays in the cache entry), ``steps``, ``gates`` and ``deployments``; empty
``cache_key``, ``published``, ``deployed`` and ``url`` are ``null``. A deployment listed in a job has
the short form (what, where, result, who); ``deploy history`` the whole one (with ``what``:
``NAME@VERSION``). Times are epoch seconds.

A reader on another machine (the REST API, the dashboard) gets the same objects with the same keys,
given a ``Remote``: the server's own paths are not its business, so ``project_dir``,
``pipeline_file`` and ``log_path`` are null and ``log`` is the URL of the job's log in the REST API
(null when the job has no log file: a cache hit's log stays in its cache entry). Faces may add keys
beside a view, never change one: the API's run adds ``queue`` (the queue entry that started it), the
dashboard's run page puts the run, its jobs, its DAG and its timeline side by side.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from buildyard.model import JobStatus, RunStatus, SkipReason
from buildyard.store.deployments import DeploymentRecord
from buildyard.store.records import GateRecord, JobRecord, RunRecord, StepRecord

if TYPE_CHECKING:
    from buildyard.store.history import History

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Remote:
    """How views are shown to a client of the server of ``project``: URLs instead of the server's paths."""

    project: str

    def log_url(self, run_id: str, job_id: str) -> str:
        """The REST API's URL (a path on the server) of a job's log."""
        project, run, job = (urllib.parse.quote(part, safe="") for part in (self.project, run_id, job_id))
        return f"/api/v1/projects/{project}/runs/{run}/jobs/{job}/log"


@dataclass(frozen=True, slots=True)
class StepView:
    """One step of a job."""

    run_id: str
    job_id: str
    idx: int
    name: str
    status: JobStatus
    exit_code: int | None
    started_at: float | None
    finished_at: float | None
    duration_s: float | None

    @classmethod
    def from_record(cls, s: StepRecord) -> StepView:
        """The view of a stored step."""
        return cls(
            s.run_id,
            s.job_id,
            s.idx,
            s.name,
            JobStatus(s.status),
            s.exit_code,
            s.started_at,
            s.finished_at,
            s.duration_s,
        )

    def to_json(self) -> JSON:
        """JSON-able form."""
        return {
            "run_id": self.run_id,
            "job_id": self.job_id,
            "idx": self.idx,
            "name": self.name,
            "status": str(self.status),
            "exit_code": self.exit_code,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": self.duration_s,
        }


@dataclass(frozen=True, slots=True)
class GateView:
    """One gate decision: its name, kind, status and reason, plus what the gate measured (``data``)."""

    job_id: str
    gate: str
    kind: str
    status: str  # a gate's own status: passed | failed | warning | skipped
    reason: str
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, g: GateRecord) -> GateView:
        """The view of a stored gate result."""
        return cls(g.job_id, g.gate, g.kind, g.status, g.reason, g.data)

    def to_json(self, *, with_job: bool = False) -> JSON:
        """What the gate measured, with its name, kind, status and (masked) reason on top;
        ``with_job``: with the ``job`` it decided on too (a run's gates listed apart from its jobs)."""
        out: JSON = {**self.data, "job": self.job_id} if with_job else {**self.data}
        return {
            **out,
            "gate": self.gate,
            "kind": self.kind,
            "status": self.status,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class DeploymentView:
    """One deployment (or rollback) of a version to an environment."""

    id: int
    environment: str
    artifact: str
    version: str
    status: str  # running | success | failed | rolled_back
    run_id: str
    run_number: int | None
    job_id: str
    started_at: float
    finished_at: float | None
    url: str
    approved_by: str | None
    approved_at: float | None
    rollback_of: int | None

    @classmethod
    def from_record(cls, d: DeploymentRecord) -> DeploymentView:
        """The view of a stored deployment."""
        return cls(
            d.id,
            d.environment,
            d.artifact,
            d.version,
            d.status,
            d.run_id,
            d.run_number,
            d.job_id,
            d.started_at,
            d.finished_at,
            d.url,
            d.approved_by,
            d.approved_at,
            d.rollback_of,
        )

    @property
    def what(self) -> str:
        """``NAME@VERSION``, or ``commit <sha>`` for a script deployment (no artifact)."""
        return f"{self.artifact}@{self.version}" if self.artifact else f"commit {self.version[:12]}"

    def to_json(self, *, within_job: bool = False) -> JSON:
        """JSON-able form; ``within_job``: the short form listed in a job (what, where, result, who)."""
        if within_job:
            return {
                "environment": self.environment,
                "artifact": self.artifact,
                "version": self.version,
                "status": self.status,
                "url": self.url or None,
                "approved_by": self.approved_by,
                "rollback_of": self.rollback_of,
            }
        return {
            "id": self.id,
            "environment": self.environment,
            "artifact": self.artifact,
            "version": self.version,
            "status": self.status,
            "run_id": self.run_id,
            "run_number": self.run_number,
            "job": self.job_id,
            "what": self.what,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "url": self.url or None,
            "approved_by": self.approved_by,
            "approved_at": self.approved_at,
            "rollback_of": self.rollback_of,
        }


@dataclass(frozen=True, slots=True)
class JobView:
    """One job instance of a run, with its steps, gate decisions and deployments."""

    record: JobRecord
    status: JobStatus
    skip_reason: SkipReason | None
    log: str | None
    steps: tuple[StepView, ...] = ()
    gates: tuple[GateView, ...] = ()
    deployments: tuple[DeploymentView, ...] = ()  # oldest first: a deployment, then its rollback

    @property
    def id(self) -> str:
        """The instance id (``test[3.11]``)."""
        return self.record.id

    @classmethod
    def from_record(cls, j: JobRecord, *, log_exists: Callable[[str], bool] = lambda _path: False) -> JobView:
        """A job alone (without steps, gates, deployments)."""
        skip = SkipReason(j.skip_reason) if j.skip_reason else None
        log = j.log_path if j.log_path and log_exists(j.log_path) else None
        return cls(j, JobStatus(j.status), skip, log)

    def cache_json(self) -> JSON:
        """Why the job ran or was restored (``explain --json``)."""
        r = self.record
        return {
            "job": r.id,
            "status": str(self.status),
            "cache": r.cache_status,
            "cache_key": r.cache_key,
            "saved_s": r.saved_s,
            "reasons": list(r.miss_reasons),
        }

    def to_json(self, remote: Remote | None = None) -> JSON:
        """JSON-able form (see the module docstring); ``remote``: for a client of the server."""
        r = self.record
        log_path: str | None = r.log_path
        log = self.log
        if remote is not None:
            log_path = None
            log = remote.log_url(r.run_id, r.id) if self.log is not None else None
        return {
            "run_id": r.run_id,
            "id": r.id,
            "name": r.id,
            "job": r.job,
            "status": str(self.status),
            "stage": r.stage,
            "matrix": dict(r.matrix),
            "attempts": r.attempts,
            "exit_code": r.exit_code,
            "allow_failure": r.allow_failure,
            "ready_at": r.ready_at,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "duration_s": r.duration_s,
            "queue_s": r.queue_s,
            "cpu_seconds": r.cpu_seconds,
            "peak_rss": r.peak_rss,
            "skip_reason": str(self.skip_reason) if self.skip_reason else None,
            "message": r.message,
            "log_path": log_path,
            "log": log,
            "cache_status": r.cache_status,
            "cache": r.cache_status,
            "cache_key": r.cache_key or None,
            "saved_s": r.saved_s,
            "miss_reasons": list(r.miss_reasons),
            "published": r.published or None,
            "deployed": r.deployed or None,
            "steps": [s.to_json() for s in self.steps],
            "gates": [g.to_json() for g in self.gates],
            "deployments": [d.to_json(within_job=True) for d in self.deployments],
        }


@dataclass(frozen=True, slots=True)
class RunView:
    """One run; with its jobs when they were loaded (``jobs`` is None in lists of runs)."""

    record: RunRecord
    status: RunStatus
    jobs: tuple[JobView, ...] | None = None

    @property
    def id(self) -> str:
        """The run id."""
        return self.record.id

    @classmethod
    def summary(cls, run: RunRecord) -> RunView:
        """A run without its jobs (``history``)."""
        return cls(run, RunStatus(run.status))

    @classmethod
    def from_records(
        cls,
        run: RunRecord,
        jobs: Iterable[JobRecord],
        steps: Iterable[StepRecord] = (),
        gates: Iterable[GateRecord] = (),
        deployments: Iterable[DeploymentRecord] = (),
        *,
        log_exists: Callable[[str], bool] = lambda _path: False,
    ) -> RunView:
        """A run with its jobs from the history's records (``deployments`` in any order).

        ``log_exists`` says whether a job's log file is there (the face that can look decides; a
        cache hit's log is in the cache entry, not at its path).
        """
        by_job: dict[str, tuple[list[StepView], list[GateView], list[DeploymentView]]] = {}
        for s in steps:
            by_job.setdefault(s.job_id, ([], [], []))[0].append(StepView.from_record(s))
        for g in gates:
            by_job.setdefault(g.job_id, ([], [], []))[1].append(GateView.from_record(g))
        for d in sorted(deployments, key=lambda d: d.id):
            by_job.setdefault(d.job_id, ([], [], []))[2].append(DeploymentView.from_record(d))
        views = []
        for j in jobs:
            job_steps, job_gates, job_deployments = by_job.get(j.id, ([], [], []))
            alone = JobView.from_record(j, log_exists=log_exists)
            views.append(
                replace(
                    alone, steps=tuple(job_steps), gates=tuple(job_gates), deployments=tuple(job_deployments)
                )
            )
        return cls(run, RunStatus(run.status), tuple(views))

    def to_json(self, remote: Remote | None = None) -> JSON:
        """JSON-able form (see the module docstring); ``remote``: for a client of the server."""
        r = self.record
        out: JSON = {
            "id": r.id,
            "run_id": r.id,
            "pipeline": r.pipeline,
            "number": r.number,
            "status": str(self.status),
            "event": r.event,
            "created_at": r.created_at,
            "ref": r.ref,
            "branch": r.branch,
            "tag": r.tag,
            "sha": r.sha,
            "trigger": r.trigger,
            "project_dir": r.project_dir if remote is None else None,
            "pipeline_file": r.pipeline_file if remote is None else None,
            "variables": dict(r.variables),
            "selected": list(r.selected),
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "duration_s": r.duration_s,
            "queue_s": r.queue_s,
            "jobs_total": r.jobs_total,
            "message": r.message,
        }
        if self.jobs is not None:
            out["jobs"] = [j.to_json(remote) for j in self.jobs]
        return out


def load_run(
    history: History, ref: str | None, *, log_exists: Callable[[str], bool] = lambda _p: False
) -> RunView:
    """The view of run ``ref`` (see ``History.get_run``) with its jobs, steps, gates and deployments."""
    run = history.get_run(ref)
    return RunView.from_records(
        run,
        history.jobs(run.id),
        history.steps(run.id),
        history.gates(run.id),
        history.deployments(run_id=run.id),
        log_exists=log_exists,
    )
