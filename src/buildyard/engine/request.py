"""The executor contract: a serializable ``JobRequest`` in, a ``JobOutcome`` out.

Both are frozen dataclasses of plain values (strings, numbers, booleans, tuples and nested requests of
the same kind), so a request round-trips through pickle and msgpack unchanged and a remote executor
(a Dask worker) can receive and return them. Nothing only the orchestrator needs rides along: gate
definitions, the history store and open caches belong to the wrappers (``engine.stack``). Paths are
strings valid on the machine that runs the job (a remote executor maps its own). The scheduler never
knows how a request is executed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from buildyard.engine.joblog import DEFAULT_LOG_LIMIT
from buildyard.model import JobStatus

if TYPE_CHECKING:
    from buildyard.cache.keys import MissDetail
    from buildyard.gates.reports.model import TestOutcome
    from buildyard.gates.results import GateResult


@dataclass(frozen=True, slots=True)
class StepRequest:
    """One step: ``argv`` runs ``script`` (either inline or via a file path substituted for ``{0}``)."""

    name: str
    shell: str
    script: str
    env: tuple[tuple[str, str], ...] = ()
    timeout: float | None = None
    continue_on_error: bool = False


@dataclass(frozen=True, slots=True)
class DependencyCacheRequest:
    """One ``cache:`` entry of a job: key (literal, or files + prefix), paths, restore keys, policy."""

    paths: tuple[str, ...]
    key: str = ""
    key_files: tuple[str, ...] = ()
    prefix: str = ""
    restore_keys: tuple[str, ...] = ()
    policy: str = "pull-push"


@dataclass(frozen=True, slots=True)
class CacheRequest:
    """What enters a job's cache key, and what the cache should do around the job.

    ``env`` holds only declared values (pipeline variables, job and step env, matrix): the run's
    volatile variables (run id, attempt…) and the machine's environment are not part of the key.
    ``secrets`` names variables of the request env whose values enter the key salted.
    ``salted_env`` names entries of ``env`` (passed from the machine with ``pass_env``) whose
    values enter the key only as salted digests: a key manifest is stored and shared, its values
    must not be.
    """

    definition: str  # canonical JSON of the normalized definition
    project_root: str
    upstream: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    secrets: tuple[str, ...] = ()
    salted_env: tuple[str, ...] = ()
    inputs: tuple[str, ...] | None = None
    global_inputs: tuple[str, ...] = ()
    key_commands: tuple[str, ...] = ()
    job_cache: bool = True
    dependency_caches: tuple[DependencyCacheRequest, ...] = ()
    #: Files (relative to the job's directory) never among its default inputs: the pipeline file,
    #: whose text enters a job's key only through the job's own normalized definition.
    not_inputs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """Push these files (globs relative to the job's directory) as artifact ``name`` when the job succeeds."""

    name: str
    paths: tuple[str, ...]
    version: str | tuple[tuple[str, str], ...]  # literal / "from_git_tag", or (("from_file", FILE),)
    type: str = "application"
    key: str = "default"
    build_number: int | None = None
    event: str = ""
    pipeline_file: str = ""


@dataclass(frozen=True, slots=True)
class DeployRequest:
    """Deploy ``artifact`` (``NAME@VERSION``/``NAME@CHANNEL``/``NAME``) to ``environment``.

    The artifact is pulled (verified) into ``dest`` before the steps; a health check (``health_run``
    command or ``health_url``) follows them; ``rollback``/``auto_rollback`` say what a failed one does.
    """

    environment: str
    artifact: str  # "" for a script deployment: it deploys the checked-out commit, tracked by environment
    dest: str
    url: str = ""
    health_run: str = ""
    health_url: str = ""
    health_timeout: float = 60.0
    health_interval: float = 2.0
    rollback: str = ""
    auto_rollback: bool = False
    promote: bool = True
    approved_by: str | None = None
    approved_at: float | None = None
    run_number: int = 0
    #: Deploy even when the environment already runs this version (``redeploy: always``, ``run --force``).
    redeploy: bool = False
    #: The commit a script deployment (no ``artifact``) deploys, recorded as its version.
    commit: str = ""
    #: Started without its required approval because the version was already live: deploy nothing,
    #: and fail (asking for the approval) if the environment changed since that was checked.
    unapproved: bool = False


@dataclass(frozen=True, slots=True)
class WorkspaceRequest:
    """Run the job in an isolated workspace (see ``buildyard.engine.workspace``).

    ``root`` is made fresh from the git-visible files of ``project_root`` plus the files matching
    ``upstream_outputs`` (project-relative patterns: the outputs of the jobs it needs); the job runs
    in ``root/working_directory``. After a successful attempt the job's declared outputs are copied
    to ``outputs_dir`` (this instance's own copy, what its cache entry stores) and into the project.
    """

    root: str
    project_root: str
    working_directory: str = ""
    upstream_outputs: tuple[str, ...] = ()
    #: The job's dependency cache paths (``cache: paths``, project-relative): restored into the
    #: project by the cache before the job, so copied in like upstream outputs, and copied back
    #: after a successful job for the cache to save them.
    dependency_paths: tuple[str, ...] = ()
    outputs_dir: str = ""
    keep_on_failure: bool = False


@dataclass(frozen=True, slots=True)
class JobRequest:
    """Everything needed to run one attempt of one job instance, anywhere."""

    run_id: str
    job_id: str
    attempt: int
    steps: tuple[StepRequest, ...]
    env: tuple[tuple[str, str], ...]
    cwd: str
    log_path: str
    timeout: float | None = None
    mask: tuple[str, ...] = ()
    kill_grace: float = 5.0
    log_limit: int = DEFAULT_LOG_LIMIT  # bytes per attempt's log, 0 = no cap (see ``joblog``)
    input_artifacts: tuple[tuple[str, str], ...] = ()  # (path, digest) — restored before the job runs
    output_globs: tuple[str, ...] = ()
    cache: CacheRequest | None = None
    #: A wrapper appends to the job's log after it ran (gates, publish): a cache hit writes the log
    #: file instead of leaving it in the cache's blob store.
    own_log: bool = False
    #: A command a wrapper runs for the job besides its steps (``health``, ``rollback``): the job's
    #: gates do not judge it. "" for the job itself.
    side: str = ""
    publish: PublishRequest | None = None
    deploy: DeployRequest | None = None
    workspace: WorkspaceRequest | None = None
    #: The project directory ``cwd`` is in, and the project-relative output patterns of the jobs
    #: this one needs: what a remote executor ships to make the job's workspace from content.
    project_root: str = ""
    upstream_outputs: tuple[str, ...] = ()
    #: Where the job may run on a cluster: labels an agent must all have (``("local",)``: here), and
    #: what it takes of the agent (``("cpus", "2")``, ``("mem", "8G")``), counted by the cluster.
    runs_on: tuple[str, ...] = ()
    resources: tuple[tuple[str, str], ...] = ()
    #: Project-relative patterns of the report files the job's gates read after it (a remote
    #: executor brings them back with the outputs).
    reports: tuple[str, ...] = ()


class CacheStatus(StrEnum):
    """What the job cache did for an attempt."""

    HIT = "hit"  # restored: the job did not run
    MISS = "miss"  # looked up, not found: the job ran (and its result was stored if it succeeded)
    OFF = "off"  # not looked up (caching off for the run or the job, or the cache failed)


@dataclass(frozen=True, slots=True)
class GateOutcome:
    """One gate's decision about a job, with the report it measured (a future run's baseline)."""

    result: GateResult
    report: Mapping[str, Any] | None = None

    @property
    def failed(self) -> bool:
        """True when this gate fails the job."""
        return self.result.failed

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``run --json``'s ``gates``, the history's gate rows)."""
        data = self.result.to_dict()
        if self.report is not None:
            data["report"] = self.report
        return data


@dataclass(frozen=True, slots=True)
class TestCaseRun:
    """One execution (attempt) of one test case, from the JUnit reports a ``tests`` gate read.

    ``report`` digests the report files' bytes: a report restored from the cache, or left over from an
    earlier run, digests the same as when it was first recorded (history tells it is no new execution).
    """

    __test__ = False  # not a pytest test class

    suite: str
    classname: str
    name: str
    outcome: TestOutcome
    duration: float
    attempt: int
    report: str = ""


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """How one step ended."""

    name: str
    status: JobStatus
    exit_code: int | None
    started_at: float
    finished_at: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """How one attempt ended: status, timings (wall clock + monotonic duration) and resource figures."""

    job_id: str
    attempt: int
    status: JobStatus
    exit_code: int | None
    started_at: float
    finished_at: float
    duration_s: float
    cpu_seconds: float = 0.0
    peak_rss: int = 0
    steps: tuple[StepOutcome, ...] = ()
    message: str = ""
    log_path: str = ""
    output_artifacts: tuple[tuple[str, str], ...] = ()  # (path, digest)
    cache_key: str = ""
    cache_status: CacheStatus = CacheStatus.OFF
    saved_s: float = 0.0
    miss_reasons: tuple[MissDetail, ...] = ()
    gate_results: tuple[GateOutcome, ...] = ()
    test_results: tuple[TestCaseRun, ...] = ()  # from the JUnit reports of tests gates
    published: str = ""  # NAME@VERSION pushed to the artifact repository
    deployed: str = ""  # NAME@VERSION deployed (whatever the health check said)
    log_cut: int = 0  # bytes left out of the middle of the log (it passed its cap)
    log_problem: str = ""  # the log could not be written (one line, e.g. disk full)
    #: Where the declared outputs are captured from for the cache ("" = the project): an isolated
    #: job's own copy, so instances writing the same paths each store their own files.
    outputs_root: str = ""


OutputSink = Callable[[str, bytes], None]
"""Receives ``(job_id, masked bytes)`` as a job writes output."""


def outcome_without_steps(
    request: JobRequest, status: JobStatus, started_at: float, message: str, *, deployed: str = ""
) -> JobOutcome:
    """The outcome of an attempt that ran none of its steps (refused, skipped with a reason, or failed
    before starting), ``started_at`` a wall-clock time."""
    now = time.time()
    return JobOutcome(
        job_id=request.job_id,
        attempt=request.attempt,
        status=status,
        exit_code=0 if status == JobStatus.SUCCESS else None,
        started_at=started_at,
        finished_at=now,
        duration_s=max(0.0, now - started_at),
        message=message,
        log_path=request.log_path,
        deployed=deployed,
    )


def log_note(request: JobRequest, line: str, sink: OutputSink | None) -> None:
    """Append ``buildyard: line`` to the job's log and show it like the job's own output."""
    data = f"buildyard: {line}\n".encode()
    with contextlib.suppress(OSError), Path(request.log_path).open("ab") as log:  # e.g. disk full:
        log.write(data)  # the note is still shown; the job's own log write reports the problem
    if sink is not None:
        sink(request.job_id, data)


class Executor(Protocol):
    """Runs job requests. Cancellation is asyncio task cancellation: kill everything, then re-raise."""

    async def execute(self, request: JobRequest, sink: OutputSink | None = None) -> JobOutcome:
        """Run every step of ``request`` and report how it went."""
        ...
