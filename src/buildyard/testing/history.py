"""``MemoryHistory``: the whole ``History`` contract in memory, for tests of code that records or reads runs.

Complete, not a stub: it passes the same contract suite as ``SqlHistory`` on SQLite and PostgreSQL
(``tests/store/test_history_contract.py``), shares their rules for refs, verdicts and decisions
(``store/sqlhistory.py``), and hands out copies, so a caller never changes what is stored.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import threading
import time
from collections.abc import Collection, Iterable, Sequence
from typing import Any, TypeVar

from buildyard.errors import StoreError
from buildyard.store.deployments import DEPLOYMENT_STATUSES, ApprovalRecord, DeploymentRecord
from buildyard.store.history import History
from buildyard.store.records import RUN_ID_LENGTH, GateRecord, JobRecord, RunRecord, StepRecord, TestRecord
from buildyard.store.sqlhistory import (
    FLAKINESS_ROWS_PER_TEST,
    JOB_FIXED_COLUMNS,
    already_decided,
    one_run,
    verdict,
)

R = TypeVar("R")
_RUN_FIELDS = frozenset(f.name for f in dataclasses.fields(RunRecord)) - {"id"}


def _copies(records: Iterable[R]) -> list[R]:
    return copy.deepcopy(list(records))


class MemoryHistory:
    """A history store in memory (thread-safe; one process)."""

    url = "memory:"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._runs: dict[str, RunRecord] = {}
        self._jobs: dict[tuple[str, str], JobRecord] = {}  # insertion order is planned order
        self._steps: list[StepRecord] = []
        self._gates: list[GateRecord] = []
        self._tests: list[TestRecord] = []
        self._deployments: dict[int, DeploymentRecord] = {}
        self._approvals: dict[tuple[str, str], ApprovalRecord] = {}
        self._ids = itertools.count(1)

    def close(self) -> None:
        """Nothing to release."""

    # --- runs -------------------------------------------------------------------------------------

    def create_run(self, record: RunRecord) -> RunRecord:
        """Insert a run with the next number of its pipeline."""
        with self._lock:
            if record.id in self._runs:
                raise StoreError("could not allocate a run number (too many concurrent runs); try again")
            number = 1 + max(
                (r.number for r in self._runs.values() if r.pipeline == record.pipeline), default=0
            )
            stored = dataclasses.replace(copy.deepcopy(record), number=number)
            self._runs[record.id] = stored
            return copy.deepcopy(stored)

    def update_run(self, run_id: str, **values: Any) -> None:
        """Update fields of a run."""
        unknown = values.keys() - _RUN_FIELDS
        if unknown:
            raise ValueError(f"not updatable run fields: {sorted(unknown)}")
        with self._lock:
            if run_id in self._runs:
                self._runs[run_id] = dataclasses.replace(self._runs[run_id], **copy.deepcopy(values))

    def _newest(self, pipeline: str | None = None) -> list[RunRecord]:
        runs = [r for r in self._runs.values() if pipeline in (None, "", r.pipeline)]
        return sorted(runs, key=lambda r: r.created_at, reverse=True)

    def list_runs(self, *, pipeline: str | None = None, limit: int = 20) -> list[RunRecord]:
        """Newest runs first."""
        with self._lock:
            return _copies(self._newest(pipeline)[:limit])

    def get_run(self, ref: str | None, *, pipeline: str | None = None) -> RunRecord:
        """A run by number, ``PIPELINE#N``, id or id prefix; the latest for None/``last``."""
        if ref is not None and "#" in ref:
            pipeline, _, ref = ref.rpartition("#")
        with self._lock:
            runs = self._newest(pipeline)
            if ref in (None, "last", "latest"):
                found = runs[:1]
            elif len(ref) == RUN_ID_LENGTH:  # a whole id, even if all digits
                found = [r for r in runs if r.id == ref][:2]
            elif ref.isdigit():
                found = [r for r in runs if r.number == int(ref)][:2]
            else:
                found = [r for r in runs if r.id.startswith(ref)][:2]
            return copy.deepcopy(one_run(found, ref))

    def durations(self, pipeline: str, limit_runs: int = 5) -> dict[str, float]:
        """Mean successful duration per job instance over the last finished runs of ``pipeline``."""
        with self._lock:
            finished = [r.id for r in self._newest(pipeline) if r.status in ("success", "failed")]
            recent = set(finished[:limit_runs])
            samples: dict[str, list[float]] = {}
            for job in self._jobs.values():
                if job.run_id in recent and job.status == "success" and job.duration_s is not None:
                    samples.setdefault(job.id, []).append(job.duration_s)
        return {job: sum(values) / len(values) for job, values in samples.items()}

    def latest_run_id(self, *, pipeline: str, branch: str, status: str, before: float) -> str | None:
        """Id of the newest run of ``pipeline`` on ``branch`` with ``status`` created before ``before``."""
        with self._lock:
            for run in self._newest(pipeline):
                if run.branch == branch and run.status == status and run.created_at < before:
                    return run.id
        return None

    # --- jobs and steps ---------------------------------------------------------------------------

    def save_jobs(self, records: Sequence[JobRecord], *, insert: bool = False) -> None:
        """Insert or update job rows (an update keeps ``JOB_FIXED_COLUMNS`` as inserted)."""
        with self._lock:
            for record in _copies(records):
                key = (record.run_id, record.id)
                if insert:
                    if key in self._jobs:
                        raise StoreError(f"job {record.id} of run {record.run_id} is already recorded")
                    self._jobs[key] = record
                elif key in self._jobs:
                    kept = {c: getattr(self._jobs[key], c) for c in JOB_FIXED_COLUMNS}
                    self._jobs[key] = dataclasses.replace(record, **kept)

    def jobs(self, run_id: str) -> list[JobRecord]:
        """Job rows of a run, in planned order."""
        with self._lock:
            return _copies(j for j in self._jobs.values() if j.run_id == run_id)

    def save_steps(self, records: Sequence[StepRecord]) -> None:
        """Insert step rows (replacing earlier steps of the same jobs)."""
        with self._lock:
            self._steps = _replace(self._steps, _copies(records))

    def steps(self, run_id: str, job_id: str | None = None) -> list[StepRecord]:
        """Step rows of a run (or of one job), by job then order."""
        with self._lock:
            found = [s for s in self._steps if s.run_id == run_id and job_id in (None, s.job_id)]
            return _copies(sorted(found, key=lambda s: (s.job_id, s.idx)))

    # --- gates ------------------------------------------------------------------------------------

    def save_gates(self, records: Sequence[GateRecord]) -> None:
        """Insert gate results (replacing earlier ones of the same jobs)."""
        with self._lock:
            self._gates = _replace(self._gates, _copies(records))

    def gates(self, run_id: str) -> list[GateRecord]:
        """Gate results of a run, by job then order."""
        with self._lock:
            return _copies(
                sorted((g for g in self._gates if g.run_id == run_id), key=lambda g: (g.job_id, g.idx))
            )

    def latest_gate_data(
        self, *, pipeline: str, branch: str, gate: str, before: float
    ) -> dict[str, Any] | None:
        """``gate``'s data in the newest successful run of ``pipeline`` on ``branch`` before ``before``."""
        with self._lock:
            for run in self._newest(pipeline):
                if run.branch != branch or run.status != "success" or run.created_at >= before:
                    continue
                for g in self._gates:
                    if g.run_id == run.id and g.gate == gate:
                        return copy.deepcopy(g.data)
        return None

    def gate_verdict(self, run_id: str) -> tuple[bool, str]:
        """Did run ``run_id`` pass its gates?"""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                return False, f"run {run_id[:12]} is not in this history"
            return verdict(run.number, [(g.gate, g.status) for g in self._gates if g.run_id == run_id])

    # --- tests ------------------------------------------------------------------------------------

    def save_tests(self, records: Sequence[TestRecord]) -> None:
        """Insert test results (replacing earlier ones of the same jobs)."""
        with self._lock:
            self._tests = _replace(self._tests, _copies(records))

    def tests_of_run(self, run_id: str) -> list[TestRecord]:
        """Test results of one run, by job then order."""
        with self._lock:
            return _copies(
                sorted((t for t in self._tests if t.run_id == run_id), key=lambda t: (t.job_id, t.idx))
            )

    def tests_since(self, since: float, *, pipeline: str | None = None) -> list[TestRecord]:
        """Test executions at or after ``since``, oldest first (restored left out), of one pipeline or all."""
        with self._lock:
            found = [
                t
                for t in self._tests
                if t.at >= since
                and not t.restored
                and t.run_id in self._runs
                and pipeline in (None, self._runs[t.run_id].pipeline)
            ]
            return _copies(sorted(found, key=_test_order))

    def tests_for_flakiness(self, *, run_id: str, pipeline: str, since: float) -> list[TestRecord]:
        """Executions since ``since`` of run ``run_id``'s tests in runs of ``pipeline`` (bounded per test)."""
        with self._lock:
            mine = {(t.suite, t.classname, t.name) for t in self._tests if t.run_id == run_id}
            found = [
                t
                for t in self._tests
                if (t.suite, t.classname, t.name) in mine
                and t.at >= since
                and not t.restored
                and (run := self._runs.get(t.run_id)) is not None
                and run.pipeline == pipeline
                and (run.finished_at is None or run.finished_at >= since)
            ]
            per_test: dict[tuple[str, str, str], list[TestRecord]] = {}
            for t in sorted(found, key=lambda t: t.at, reverse=True):
                per_test.setdefault((t.suite, t.classname, t.name), []).append(t)
            kept = [t for rows in per_test.values() for t in rows[:FLAKINESS_ROWS_PER_TEST]]
            return _copies(sorted(kept, key=_test_order))

    def recorded_reports(self, reports: Collection[str]) -> set[str]:
        """Which of the report digests ``reports`` are already recorded."""
        wanted = set(reports) - {""}
        with self._lock:
            return {t.report for t in self._tests if t.report in wanted}

    # --- deployments and approvals ----------------------------------------------------------------

    def start_deployment(self, record: DeploymentRecord) -> int:
        """Insert a deployment; return its id."""
        with self._lock:
            deployment_id = next(self._ids)
            self._deployments[deployment_id] = dataclasses.replace(record, id=deployment_id, run_number=None)
            return deployment_id

    def finish_deployment(self, deployment_id: int, status: str) -> None:
        """Record how a deployment ended (only a running one ends; only a failed one rolls back)."""
        if status not in DEPLOYMENT_STATUSES:
            raise ValueError(f"unknown deployment status {status!r}")
        allowed = ("running", "failed") if status == "rolled_back" else ("running",)
        with self._lock:
            found = self._deployments.get(deployment_id)
            if found is not None and found.status in allowed:
                self._deployments[deployment_id] = dataclasses.replace(
                    found, status=status, finished_at=time.time()
                )

    def mark_rolled_back(self, deployment_id: int) -> None:
        """A successful deployment that a rollback replaced."""
        with self._lock:
            found = self._deployments.get(deployment_id)
            if found is not None and found.status == "success":
                self._deployments[deployment_id] = dataclasses.replace(found, status="rolled_back")

    def _with_run_numbers(self) -> list[DeploymentRecord]:
        """Deployments newest first, each with its run's number (those of unknown runs left out)."""
        return [
            dataclasses.replace(d, run_number=self._runs[d.run_id].number)
            for _, d in sorted(self._deployments.items(), reverse=True)
            if d.run_id in self._runs
        ]

    def deployments(
        self, environment: str | None = None, *, run_id: str | None = None, limit: int = 50
    ) -> list[DeploymentRecord]:
        """Deployments, newest first (of one environment and/or one run)."""
        with self._lock:
            found = [
                d
                for d in self._with_run_numbers()
                if environment in (None, d.environment) and run_id in (None, d.run_id)
            ]
        return found[:limit]

    def last_good_version(
        self, environment: str, *, artifact: str, exclude: str | None = None, before: int | None = None
    ) -> DeploymentRecord | None:
        """The newest successful deployment of ``artifact`` to ``environment``: the rollback target."""
        with self._lock:
            for d in self._with_run_numbers():
                if (
                    (d.environment, d.artifact, d.status) == (environment, artifact, "success")
                    and d.version != exclude
                    and (before is None or d.id < before)
                ):
                    return d
        return None

    def decide(self, record: ApprovalRecord) -> None:
        """Record an approval decision; a second decision on the same job is refused."""
        with self._lock:
            key = (record.run_id, record.job_id)
            if key in self._approvals:
                raise already_decided(record, self._approvals[key])
            self._approvals[key] = record

    def approval(self, run_id: str, job_id: str) -> ApprovalRecord | None:
        """The decision on a job of a run, if any."""
        with self._lock:
            return self._approvals.get((run_id, job_id))


_Keyed = TypeVar("_Keyed", StepRecord, GateRecord, TestRecord)


def _replace(rows: list[_Keyed], new: list[_Keyed]) -> list[_Keyed]:
    """``rows`` without those of the jobs ``new`` has, then ``new``."""
    jobs = {(r.run_id, r.job_id) for r in new}
    return [r for r in rows if (r.run_id, r.job_id) not in jobs] + new


def _test_order(t: TestRecord) -> tuple[float, str, str, int]:
    return (t.at, t.run_id, t.job_id, t.idx)


def _conforms(store: MemoryHistory) -> History:
    """``MemoryHistory`` is a ``History`` (checked by mypy, which rejects this function otherwise)."""
    return store
