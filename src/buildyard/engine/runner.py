"""One run as a list of named steps: ``load → plan → execute → record``.

Each step is a plain function. ``execute_run`` wires them together, owns the asyncio loop and the
signal handlers (Ctrl-C / SIGTERM cancel the run cleanly), and streams job events to the history
store and to an observer (the CLI's renderer). Nothing here prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import re
import signal
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from hashlib import blake2b
from pathlib import Path
from typing import Any, Protocol

import msgspec

from buildyard import __version__
from buildyard.engine.analytics import TestRows, analytics_step, declared_outputs, tree_digest
from buildyard.engine.approvals import Approvals
from buildyard.engine.joblog import disk_full_message, is_disk_full, is_disk_full_message, log_limit
from buildyard.engine.liveness import Recovered, RunLock, recover_abandoned
from buildyard.engine.local import LocalExecutor
from buildyard.engine.masking import Masker
from buildyard.engine.request import (
    CacheRequest,
    DependencyCacheRequest,
    DeployRequest,
    Executor,
    JobRequest,
    PublishRequest,
    StepRequest,
    WorkspaceRequest,
)
from buildyard.engine.scheduler import (
    JobFinished,
    JobResult,
    JobSetupError,
    JobStarted,
    JobWaiting,
    RunEvent,
    Scheduler,
)
from buildyard.engine.secrets import read_secrets_file, resolve
from buildyard.engine.watchdog import kill_marked, last_pid
from buildyard.errors import Diagnostic, DiskFullError, SpecError
from buildyard.fsutil import atomic_write_bytes
from buildyard.gitinfo import GitInfo, read_git
from buildyard.model import Event, JobStatus, RunStatus
from buildyard.plan.build import JobInstance, Plan, TriggerContext, build, static_context
from buildyard.settings import load as load_settings
from buildyard.spec.load import find_file, load
from buildyard.spec.models import Pipeline
from buildyard.spec.yamlpos import MAX_FILE_BYTES
from buildyard.store.history import (
    GateRecord,
    History,
    JobRecord,
    RunRecord,
    SqlHistory,
    StepRecord,
    default_url,
)

FLUSH_INTERVAL = 0.5
#: Final statuses of jobs that started no process (nothing of theirs can be left to kill).
_NO_PROCESS = frozenset({JobStatus.CACHED, JobStatus.SKIPPED, JobStatus.MANUAL})


@dataclass(frozen=True)
class RunOptions:
    """Everything a run is asked to do (the CLI fills it from flags, environment and defaults)."""

    project_dir: Path
    file: Path | None = None
    select: tuple[str, ...] = ()
    slots: int | None = None
    event: Event = Event.PUSH
    branch: str | None = None
    tag: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    manual: frozenset[str] = frozenset()
    fail_fast: bool = False
    dry_run: bool = False
    secrets_file: Path | None = None
    home: Path | None = None
    db_url: str | None = None
    kill_grace: float = 5.0
    trigger: str = "cli"
    cache: bool = True
    cache_dir: Path | None = None
    remote_cache: str | None = None
    #: Run the selected jobs without the jobs they need (``deploy rollback``).
    alone: bool = False
    #: Job name → artifact reference its deployment must use (``deploy rollback`` pins a version).
    pins: Mapping[str, str] = field(default_factory=dict)
    #: Who approves deployments selected with ``--manual`` (default: ``$USER``).
    approver: str | None = None
    #: Seconds between two looks at the history for an approval decision.
    approval_poll: float = 0.5
    #: Deploy even what an environment already runs (``run --force``).
    force_deploy: bool = False
    #: A declared output that matches nothing after a successful job fails it (not only a warning).
    strict: bool = False
    #: Cap of each job attempt's log in bytes (0 = none); None: ``$BUILDYARD_LOG_LIMIT`` or 100 MB.
    log_limit: int | None = None
    #: Keep the workspace of an isolated job that failed (``run --keep-workspaces``).
    keep_workspaces: bool = False
    #: A pipeline already loaded (an imported GitLab file): used instead of reading ``file``.
    pipeline: Pipeline | None = None


@dataclass
class RunResult:
    """What a run produced."""

    plan: Plan
    pipeline: Pipeline
    status: RunStatus
    run: RunRecord | None = None
    jobs: list[JobResult] = field(default_factory=list)
    masker: Masker = field(default_factory=lambda: Masker(()))
    home: Path = Path()
    #: New / known / fixed test failures against the last successful run of the branch (with tests gates).
    triage: Any = None
    #: Tests flaky as of this run (passed and failed on one commit within 14 days).
    flaky: list[Any] = field(default_factory=list)


class RunObserver(Protocol):
    """Presentation hooks; called on the loop thread, must not block."""

    def started(self, run: RunRecord, plan: Plan) -> None:
        """The run is recorded and about to start."""

    def event(self, event: RunEvent) -> None:
        """A job started, is retrying or finished."""

    def output(self, job_id: str, data: bytes) -> None:
        """Masked output of a running job."""

    def warning(self, message: str) -> None:
        """Something degraded but the run goes on (e.g. the remote cache is unreachable)."""


def home_dir(options: RunOptions) -> Path:
    """The ``home`` setting (``BUILDYARD_HOME``, config file), else ``.buildyard/`` in the project."""
    if options.home is not None:
        return options.home
    return load_settings(options.project_dir).home


def open_history(options: RunOptions) -> SqlHistory:
    """The history store selected by ``--db``/``BUILDYARD_DB``, else SQLite under the home directory."""
    url = options.db_url or load_settings(options.project_dir).db or default_url(home_dir(options))
    return SqlHistory(url)


def open_checked_history(options: RunOptions) -> SqlHistory:
    """``open_history`` with this home's abandoned runs closed first: what readers of the history see."""
    history = open_history(options)
    recover_abandoned(history, home_dir(options))
    return history


# --- steps ---------------------------------------------------------------------------------------


def load_step(options: RunOptions) -> Pipeline:
    """Find and validate the pipeline file (through the parsed-pipeline cache, see ``load_cached``)."""
    if options.pipeline is not None:
        return options.pipeline
    return load_cached(find_file(options.project_dir, options.file), home_dir(options) / "spec-cache")


def _spec_code_stamp() -> bytes:
    """What the validated form depends on besides the text: buildyard's version and spec sources."""
    import buildyard.spec  # noqa: PLC0415

    parts = [__version__]
    folder = Path(buildyard.spec.__file__).parent
    for source in sorted(folder.glob("*.py")):
        st = source.stat()
        parts.append(f"{source.name}:{st.st_mtime_ns}:{st.st_size}")
    return "\n".join(parts).encode()


#: Built once per process (the daemon builds it before forking): building it costs more than decoding.
_PIPELINE_DECODER = msgspec.msgpack.Decoder(Pipeline)


def _typed_gates(pipeline: Pipeline) -> Pipeline:
    """Gate definitions are typed ``Any`` in the spec: decode them back into their gate structs."""
    if not pipeline.gates and not any(job.gates for job in pipeline.jobs.values()):
        return pipeline
    from buildyard.gates.config import AnyGate  # noqa: PLC0415 - only for pipelines with gates

    def typed(raw: list[Any]) -> list[Any]:
        return msgspec.convert(raw, type=list[AnyGate]) if raw else raw

    jobs = {name: msgspec.structs.replace(job, gates=typed(job.gates)) for name, job in pipeline.jobs.items()}
    return msgspec.structs.replace(pipeline, gates=typed(pipeline.gates), jobs=jobs)


def load_cached(path: Path, cache_dir: Path) -> Pipeline:
    """``load(path)``, remembering the validated pipeline by the digest of its text.

    Parsing YAML with positions and validating field by field costs ~15 ms for 100 jobs; decoding
    the remembered struct ~1 ms. Only valid pipelines are remembered (errors are always re-reported).
    The key covers the text, the path and the spec code, so an upgrade never decodes a stale shape.
    """
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return load(path)  # refuses it, without reading it all
        data = path.read_bytes()
    except OSError:
        return load(path)  # reports the problem
    digest = blake2b(data + b"\0" + str(path).encode() + b"\0" + _spec_code_stamp(), digest_size=16)
    entry = cache_dir / f"{digest.hexdigest()}.msgpack"
    with contextlib.suppress(OSError, msgspec.DecodeError, msgspec.ValidationError):
        return _typed_gates(_PIPELINE_DECODER.decode(entry.read_bytes()))
    pipeline = load(path)
    with contextlib.suppress(OSError):
        cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(entry, msgspec.msgpack.encode(pipeline), durable=False)
    return pipeline


def trigger_step(
    options: RunOptions, pipeline: Pipeline, git: GitInfo
) -> tuple[TriggerContext, dict[str, str]]:
    """The trigger context and the secret values available to this run."""
    names = {s for job in pipeline.jobs.values() for s in job.secrets}
    file_values = read_secrets_file(options.secrets_file) if options.secrets_file else {}
    secrets = resolve(names, os.environ, file_values)
    branch = options.branch if options.branch is not None else git.branch
    tag = options.tag if options.tag is not None else git.tag
    ref = f"refs/tags/{tag}" if options.tag else (f"refs/heads/{branch}" if branch else git.ref)
    env = {k: v for k, v in os.environ.items() if k not in names}
    trigger = TriggerContext(
        event=options.event,
        branch=branch,
        tag=tag,
        sha=git.sha,
        ref=ref,
        variables=dict(options.variables),
        env=env,
        manual=options.manual,
    )
    return trigger, secrets


def plan_step(
    options: RunOptions, pipeline: Pipeline, trigger: TriggerContext, history: History | None
) -> Plan:
    """Build the plan, using past durations (when known) as critical-path weights."""
    durations = history.durations(pipeline.name) if history is not None else {}
    plan = build(pipeline, trigger, select=options.select, durations=durations, alone=options.alone)
    _check_versions(plan, pipeline, options.project_dir)
    return plan


def _check_versions(plan: Plan, pipeline: Pipeline, project: Path) -> None:
    """A publish whose version cannot be made is reported before any job runs, not after the build."""
    publishing = {inst.job: inst.publish for inst in plan.instances.values() if inst.publish is not None}
    if not publishing:
        return
    from buildyard.artifacts.api import check_version_setting  # noqa: PLC0415 - only with publish:
    from buildyard.artifacts.errors import ArtifactError  # noqa: PLC0415

    problems = []
    for job, spec in publishing.items():
        try:
            check_version_setting(spec.version, project=project)
        except ArtifactError as exc:
            line, col = pipeline.position(job)
            problems.append(Diagnostic(pipeline.file, line, col, f"jobs.{job}.publish.version", str(exc)))
    if problems:
        raise SpecError(problems)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

#: What every job sees of the machine's environment in ``env_mode: strict`` (``*`` is a wildcard).
STRICT_BASE_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR",
    "HOSTNAME", "NO_COLOR", "FORCE_COLOR", "COLORTERM",
)  # fmt: skip


def passed_env(machine: Mapping[str, str], patterns: Sequence[str], *, base: bool = True) -> dict[str, str]:
    """The variables of ``machine`` matching ``patterns`` (plus ``STRICT_BASE_ENV`` when ``base``)."""
    wanted = (*STRICT_BASE_ENV, *patterns) if base else tuple(patterns)
    exact = {p for p in wanted if "*" not in p}
    globs = [p for p in wanted if "*" in p]
    return {k: v for k, v in machine.items() if k in exact or any(fnmatch.fnmatchcase(k, g) for g in globs)}


def _outputs(inst: JobInstance) -> tuple[str, ...]:
    """``inst``'s declared outputs (``artifacts: paths``, relative to its working directory) made
    relative to the project."""
    if not inst.working_directory or not inst.artifacts:
        return tuple(inst.artifacts)
    from buildyard.cache.pathsafe import project_outputs  # noqa: PLC0415 - the cache stack is lazy

    return project_outputs(inst.working_directory, inst.artifacts)


def _project_paths(working_directory: str | None, paths: Sequence[str]) -> tuple[str, ...]:
    """``paths`` relative to a job's working directory made relative to the project."""
    if not working_directory or not paths:
        return tuple(paths)
    from buildyard.cache.pathsafe import project_outputs  # noqa: PLC0415 - the cache stack is lazy

    return project_outputs(working_directory, paths)


def log_name(job_id: str) -> str:
    """A file name for a job instance's log (readable, collision-free)."""
    safe = _UNSAFE.sub("_", job_id).strip("_") or "job"
    if safe != job_id:
        safe += "-" + blake2b(job_id.encode(), digest_size=4).hexdigest()
    return safe + ".log"


class RequestFactory:
    """Turns a job instance into a ``JobRequest`` (environment, working directory, log path)."""

    def __init__(
        self,
        *,
        options: RunOptions,
        pipeline: Pipeline,
        plan: Plan,
        trigger: TriggerContext,
        run: RunRecord,
        secrets: Mapping[str, str],
        log_dir: Path,
    ) -> None:
        self.options = options
        self.plan = plan
        self.keys: dict[str, str] = {}  # cache keys of finished jobs, for their dependents' keys
        self.published: dict[str, str] = {}  # NAME@VERSION published by finished jobs (deployments)
        self.approvals: dict[str, tuple[str, float]] = {}  # deployment job → (approver, when)
        self.failed: set[str] = set()  # jobs that failed the run (the gates node reports them)
        self.secrets = dict(secrets)
        self.log_dir = log_dir
        self.log_limit = (
            options.log_limit if options.log_limit is not None else log_limit(project=options.project_dir)
        )
        self.mask = tuple(sorted(set(self.secrets.values())))
        declared = {s for job in pipeline.jobs.values() for s in job.secrets}
        self.machine = {
            k: v for k, v in os.environ.items() if k not in declared and not k.startswith("BUILDYARD_")
        }
        self.strict = plan.env_mode == "strict"
        base = passed_env(self.machine, plan.pass_env) if self.strict else dict(self.machine)
        base.update(plan.variables)
        base.update(
            {
                "CI": "true",
                "BUILDYARD": "true",
                "BUILDYARD_RUN_ID": run.id,
                "BUILDYARD_RUN_NUMBER": str(run.number),
                "BUILDYARD_PIPELINE": pipeline.name,
                "BUILDYARD_EVENT": str(trigger.event),
                "BUILDYARD_COMMIT_SHA": trigger.sha,
                "BUILDYARD_BRANCH": trigger.branch,
                "BUILDYARD_TAG": trigger.tag,
                "BUILDYARD_REF": trigger.ref,
                "BUILDYARD_PROJECT_DIR": str(options.project_dir),
            }
        )
        self.base_env = base
        self.pipeline_file = pipeline.file
        self.not_inputs = _project_relative(Path(pipeline.file), options.project_dir)
        self.home = home_dir(options)

    def __call__(self, inst: JobInstance, attempt: int) -> JobRequest:
        """The request of ``attempt`` of ``inst``; raise ``JobSetupError`` when it cannot start."""
        missing = [s for s in inst.secrets if s not in self.secrets]
        if missing:
            raise JobSetupError(f"secret {missing[0]} is not set (export it or put it in --secrets-file)")
        cwd = self.options.project_dir
        if inst.working_directory:
            cwd = cwd / inst.working_directory
            if not cwd.is_dir():
                raise JobSetupError(f"working_directory '{inst.working_directory}' does not exist")
        env = dict(self.base_env)
        if self.strict and inst.pass_env:
            env.update(passed_env(self.machine, inst.pass_env, base=False))
        env.update({f"MATRIX_{k.upper()}": v for k, v in inst.matrix})
        env.update(inst.env)
        env.update({s: self.secrets[s] for s in inst.secrets})
        env.update(
            {
                "BUILDYARD_JOB": inst.id,
                "BUILDYARD_JOB_NAME": inst.job,
                "BUILDYARD_STAGE": inst.stage or "",
                "BUILDYARD_ATTEMPT": str(attempt),
            }
        )
        return JobRequest(
            gates=inst.gates,
            gate_node=inst.gate_node,
            failed_needs=tuple(d for d in inst.needs if d in self.failed) if inst.gate_node else (),
            publish=self.publish_request(inst),
            deploy=self.deploy_request(inst),
            cache=self.cache_request(inst) if self.options.cache and not inst.gate_node else None,
            run_id=env["BUILDYARD_RUN_ID"],
            job_id=inst.id,
            attempt=attempt,
            steps=tuple(
                StepRequest(
                    name=s.name,
                    shell=inst.shell,
                    script=s.run,
                    env=s.env,
                    timeout=s.timeout,
                    continue_on_error=s.continue_on_error,
                )
                for s in inst.steps
            ),
            env=tuple(env.items()),
            cwd=str(cwd),
            log_path=str(self.log_dir / log_name(inst.id)),
            timeout=inst.timeout,
            mask=self.mask,
            kill_grace=self.options.kill_grace,
            log_limit=self.log_limit,
            output_globs=_outputs(inst),
            workspace=self.workspace_request(inst) if inst.workspace == "isolated" else None,
        )

    def workspace_request(self, inst: JobInstance) -> WorkspaceRequest:
        """Where ``inst`` runs isolated, what it sees of the jobs it needs, where its outputs go."""
        name = log_name(inst.id)[:-4]
        upstream = tuple(
            p for d in inst.needs if d in self.plan.instances for p in _outputs(self.plan.instances[d])
        )
        return WorkspaceRequest(
            root=str(self.home / "work" / self.base_env["BUILDYARD_RUN_NUMBER"] / name),
            project_root=str(self.options.project_dir),
            working_directory=inst.working_directory or "",
            upstream_outputs=upstream,
            dependency_paths=_project_paths(
                inst.working_directory, [p for d in inst.dependency_caches for p in d.paths]
            ),
            outputs_dir=str(self.home / "outputs" / name),
            keep_on_failure=self.options.keep_workspaces,
        )

    def publish_request(self, inst: JobInstance) -> PublishRequest | None:
        """What ``publish:`` pushes for ``inst`` (None without one)."""
        spec = inst.publish
        if spec is None:
            return None
        version = spec.version if isinstance(spec.version, str) else tuple(sorted(spec.version.items()))
        return PublishRequest(
            name=spec.name,
            paths=tuple(spec.paths),
            version=version,
            type=spec.type,
            key=spec.key,
            build_number=int(self.base_env["BUILDYARD_RUN_NUMBER"]),
            event=self.base_env["BUILDYARD_EVENT"],
            pipeline_file=self.pipeline_file,
        )

    def deploy_request(self, inst: JobInstance) -> DeployRequest | None:
        """What ``environment:`` deploys for ``inst`` (None for other jobs)."""
        if inst.environment is None:
            return None
        from buildyard.engine.deploying import deploy_request  # noqa: PLC0415 - only with environment:

        return deploy_request(
            inst,
            plan=self.plan,
            published=self.published,
            pins=self.options.pins,
            approval=self.approvals.get(inst.id),
            dest=self.home
            / "deploy"
            / _UNSAFE.sub("_", self.base_env["BUILDYARD_PIPELINE"])
            / self.base_env["BUILDYARD_RUN_NUMBER"]
            / log_name(inst.id)[:-4],
            run_number=int(self.base_env["BUILDYARD_RUN_NUMBER"]),
            locks=self.home / "deploy" / "locks",
            force=self.options.force_deploy,
            commit=self.base_env.get("BUILDYARD_COMMIT_SHA", ""),
        )

    def cache_request(self, inst: JobInstance) -> CacheRequest:
        """What enters ``inst``'s cache key: its definition, declared env, inputs, upstream keys."""
        from buildyard.engine.caching import canonical_definition  # noqa: PLC0415 - cache stack is lazy

        definition = {
            "steps": [
                {
                    "name": s.name,
                    "run": s.run,
                    "env": dict(s.env),
                    "timeout": s.timeout,
                    "continue_on_error": s.continue_on_error,
                }
                for s in inst.steps
            ],
            "shell": inst.shell,
            "working_directory": inst.working_directory or "",
            "matrix": dict(inst.matrix),
            "outputs": list(_outputs(inst)),
        }
        passed = (
            passed_env(self.machine, (*self.plan.pass_env, *inst.pass_env), base=False) if self.strict else {}
        )
        spec_env = {
            **self.plan.variables,
            **{f"MATRIX_{k.upper()}": v for k, v in inst.matrix},
            **dict(inst.env),
        }
        declared = {**passed, **spec_env}
        return CacheRequest(
            definition=canonical_definition(definition),
            project_root=str(self.options.project_dir),
            upstream=tuple((d, self.keys.get(d, "")) for d in inst.needs),
            env=tuple(sorted(declared.items())),
            secrets=inst.secrets,
            salted_env=tuple(sorted(set(passed) - set(spec_env))),  # machine values: salted in the key
            inputs=inst.inputs,
            global_inputs=self.plan.cache_inputs,
            key_commands=inst.key_commands,
            job_cache=inst.cached and inst.environment is None,  # deploying is the point of a deployment
            not_inputs=_under(self.not_inputs, inst.working_directory),
            dependency_caches=tuple(
                DependencyCacheRequest(
                    paths=tuple(d.paths),
                    key=d.key if isinstance(d.key, str) else "",
                    key_files=tuple(d.key.files) if not isinstance(d.key, str) else (),
                    prefix=d.key.prefix if not isinstance(d.key, str) else "",
                    restore_keys=tuple(d.restore_keys),
                    policy=d.policy,
                )
                for d in inst.dependency_caches
            ),
        )


class Recorder:
    """Buffers job updates and writes them to history in batches (every ``FLUSH_INTERVAL``)."""

    def __init__(self, history: History, run: RunRecord, masker: Masker, tree: str = "") -> None:
        self.history = history
        self.run = run
        self.masker = masker
        self.tests = TestRows(history, run, tree)  # ``tree``: digest of the uncommitted changes tested
        self.pending: dict[str, JobResult] = {}
        self.first_start: float | None = None
        #: A history write that failed because the disk is full (the run stops, see ``_drive``).
        self.failure: BaseException | None = None

    def event(self, event: RunEvent) -> None:
        """Remember the latest state of the job the event is about."""
        if isinstance(event, JobStarted):
            if self.first_start is None:
                self.first_start = event.at
        elif isinstance(event, JobFinished | JobWaiting):
            self.pending[event.result.id] = event.result

    def flush(self, scheduler: Scheduler) -> None:
        """Write buffered finished jobs and the current state of running ones."""
        results = scheduler.results
        running = [r for r in results.values() if r.started_at is not None and not r.status.is_final]
        batch = list(self.pending.values()) + running
        self.pending.clear()
        if not batch:
            return
        self.history.save_jobs([self.job_record(r) for r in batch])
        step_rows = [
            StepRecord(
                self.run.id,
                r.id,
                i,
                s.name,
                str(s.status),
                s.exit_code,
                s.started_at,
                s.finished_at,
                s.duration_s,
            )
            for r in batch
            if r.status.is_final
            for i, s in enumerate(r.steps)
        ]
        self.history.save_steps(step_rows)
        gate_rows = [
            GateRecord(
                self.run.id, r.id, i, g["gate"], g["kind"], g["status"], self.masker.mask_text(g["reason"]), g
            )
            for r in batch
            if r.status.is_final
            for i, g in enumerate(r.gate_results)
        ]
        self.history.save_gates(gate_rows)
        self.history.save_tests(self.tests.rows(batch, time.time()))

    def job_record(self, r: JobResult) -> JobRecord:
        """The history row of a job result (messages masked)."""
        queue = r.started_at - r.ready_at if r.started_at and r.ready_at else None
        return JobRecord(
            run_id=self.run.id,
            id=r.id,
            job=r.job,
            status=str(r.status),
            stage=r.stage,
            matrix=r.matrix,
            attempts=r.attempts,
            exit_code=r.exit_code,
            allow_failure=r.allow_failure,
            ready_at=r.ready_at,
            started_at=r.started_at,
            finished_at=r.finished_at,
            duration_s=r.duration_s,
            queue_s=queue,
            cpu_seconds=r.cpu_seconds,
            peak_rss=r.peak_rss,
            skip_reason=str(r.skip_reason) if r.skip_reason else None,
            message=self.masker.mask_text(r.message),
            log_path=r.log_path,
            cache_status=r.cache_status,
            cache_key=r.cache_key,
            saved_s=r.saved_s,
            miss_reasons=list(r.miss_reasons),
        )


def execute_run(
    options: RunOptions, observer: RunObserver | None = None, executor: Executor | None = None
) -> RunResult:
    """Run the pipeline of ``options`` to completion and record it."""
    pipeline = load_step(options)
    if options.log_limit is None:  # an invalid $BUILDYARD_LOG_LIMIT is reported before anything runs
        options = replace(options, log_limit=log_limit(project=options.project_dir))
    git = read_git(options.project_dir)
    trigger, secrets = trigger_step(options, pipeline, git)
    masker = Masker(secrets.values())
    history = None if options.dry_run else open_history(options)
    lock: RunLock | None = None
    try:
        plan = plan_step(options, pipeline, trigger, history)
        if history is None:
            return RunResult(plan=plan, pipeline=pipeline, status=RunStatus.SUCCESS, masker=masker)
        home = home_dir(options)
        _report_recovered(recover_abandoned(history, home), observer)
        run_id = uuid.uuid4().hex
        lock = RunLock(home, run_id)  # held until the final status is recorded
        created = time.time()
        run = history.create_run(
            RunRecord(
                id=run_id,
                pipeline=pipeline.name,
                number=0,
                status=str(RunStatus.RUNNING),
                event=str(trigger.event),
                created_at=created,
                ref=trigger.ref,
                branch=trigger.branch,
                tag=trigger.tag,
                sha=trigger.sha,
                trigger=options.trigger,
                project_dir=str(options.project_dir),
                pipeline_file=pipeline.file,
                variables={k: masker.mask_text(v) for k, v in plan.variables.items()},
                selected=list(options.select),
                jobs_total=len(plan),
            )
        )
        log_dir = home / "logs" / _UNSAFE.sub("_", pipeline.name) / str(run.number)
        log_dir.mkdir(parents=True, exist_ok=True)
        make_request = RequestFactory(
            options=options,
            pipeline=pipeline,
            plan=plan,
            trigger=trigger,
            run=run,
            secrets=secrets,
            log_dir=log_dir,
        )
        tree = tree_digest(options.project_dir, declared_outputs(pipeline), home=home)
        recorder = Recorder(history, run, masker, tree)
        history.save_jobs(
            [
                JobRecord(
                    run_id=run.id,
                    id=i.id,
                    job=i.job,
                    status="pending",
                    stage=i.stage,
                    matrix=dict(i.matrix),
                    allow_failure=i.allow_failure,
                    log_path=str(log_dir / log_name(i.id)),
                )
                for i in plan.instances.values()
            ],
            insert=True,
        )
        approvals = Approvals(history, run, make_request.approvals, poll=options.approval_poll)
        approvals.pre_approve(plan, options.approver or os.environ.get("USER") or "cli")
        if observer is not None:
            observer.started(run, plan)

        problems: list[str] = []  # logs that could not be written (disk full…), first first

        def on_event(event: RunEvent) -> None:
            if isinstance(event, JobFinished) and event.result.log_problem:
                problems.append(event.result.log_problem)
            if isinstance(event, JobFinished) and event.result.log_cut:
                _warner(observer)(
                    f"{event.result.id}: its log passed the limit of {make_request.log_limit} bytes: "
                    f"{event.result.log_cut} bytes cut from the middle of {event.result.log_path}"
                )
            if isinstance(event, JobWaiting):
                history.save_jobs([recorder.job_record(event.result)])  # `approve` checks it at once
            if isinstance(event, JobFinished):
                if event.result.published:
                    make_request.published[event.result.id] = event.result.published
                if event.result.cache_key:
                    make_request.keys[event.result.id] = event.result.cache_key
                if event.result.blocks_run:
                    make_request.failed.add(event.result.id)
            recorder.event(event)
            if isinstance(event, JobFinished) and event.result.gate_results:
                recorder.flush(scheduler)  # a deployment promoting this run's artifact asks for its gates
            if observer is not None:
                observer.event(event)

        cache_stack = open_cache_stack(options, home, observer) if options.cache else None
        local = None  # an executor made here is ours to close: it owns warm shell workers
        if executor is None:
            executor = local = LocalExecutor(load_settings(options.project_dir).executor)
        inner: Executor = executor
        workspaces = None
        if any(i.workspace == "isolated" for i in plan.instances.values()):
            from buildyard.engine.workspace import WorkspaceExecutor  # noqa: PLC0415

            _report_auto_isolated(plan, observer)
            method = load_settings(options.project_dir).workspace_method
            inner = workspaces = WorkspaceExecutor(
                inner, method=method
            )  # inside the cache: keys and hits as if shared
        if any(i.artifacts for i in plan.instances.values()):
            from buildyard.engine.outputs import OutputCheckExecutor  # noqa: PLC0415

            inner = OutputCheckExecutor(
                inner, project=options.project_dir, warn=_warner(observer), strict=options.strict
            )
        if cache_stack is not None:
            inner = cache_stack.wrap(inner)
        from buildyard.engine.gating import GatingExecutor  # noqa: PLC0415

        def baseline(gate: str, branch: str) -> dict[str, Any] | None:
            return history.latest_gate_data(
                pipeline=pipeline.name, branch=branch or trigger.branch, gate=gate, before=created
            )

        inner = GatingExecutor(inner, project=options.project_dir, run_started=created, baselines=baseline)
        if any(i.publish is not None for i in plan.instances.values()):
            from buildyard.engine.publishing import PublishingExecutor  # noqa: PLC0415

            inner = PublishingExecutor(inner, project=options.project_dir, warn=_warner(observer))
        if any(i.environment is not None for i in plan.instances.values()):
            from buildyard.engine.deploying import DeployingExecutor  # noqa: PLC0415

            inner = DeployingExecutor(inner, project=options.project_dir, history=history)
        scheduler = Scheduler(
            plan,
            inner,
            make_request,
            slots=options.slots or os.cpu_count() or 1,
            fail_fast=options.fail_fast,
            on_event=on_event,
            sink=observer.output if observer is not None else None,
            context=static_context(pipeline, trigger),
            approver=approvals.wait,
        )
        first_pid = last_pid()
        try:
            asyncio.run(_drive(scheduler, recorder))
        finally:
            if local is not None:
                local.close()
            if workspaces is not None:
                workspaces.close()
            if cache_stack is not None:
                cache_stack.close()
        if any(r.attempts and r.status not in _NO_PROCESS for r in scheduler.results.values()):
            kill_marked(f"BUILDYARD_RUN_ID={run.id}", since=first_pid)  # the jobs' escaped daemons
        status = scheduler.status()
        finished = time.time()
        failure = recorder.failure  # a disk-full history write during the run (it stopped the jobs)
        if failure is None:
            try:
                recorder.flush(scheduler)
                history.update_run(
                    run.id,
                    status=str(status),
                    started_at=recorder.first_start,
                    finished_at=finished,
                    duration_s=finished - created,
                    queue_s=(recorder.first_start - created) if recorder.first_start else None,
                    message=problems[0] if problems else "",
                )
            except Exception as exc:
                if not is_disk_full(exc):
                    raise
                failure = exc
        if failure is not None:  # the lock is abandoned below: the next command records the run so
            raise DiskFullError(
                f"{disk_full_message(_history_where(history))} (run #{run.number} is recorded as "
                "abandoned by the next buildyard command)"
            ) from None
        lock.release()
        full = [p for p in problems if is_disk_full_message(p)]
        if full:  # recorded as the jobs' and the run's reason; the CLI says it in one line
            raise DiskFullError(full[0])
        final = history.get_run(run.id)
        if scheduler.internal_errors:
            raise scheduler.internal_errors[0]
        triage, flaky = analytics_step(history, final, created)
        return RunResult(
            plan=plan,
            pipeline=pipeline,
            status=status,
            run=final,
            jobs=list(scheduler.results.values()),
            masker=masker,
            home=home,
            triage=triage,
            flaky=flaky,
        )
    finally:
        if lock is not None:
            lock.abandon()  # a no-op after release; after an error the next run closes this one
        if history is not None:
            history.close()


def _history_where(history: SqlHistory) -> str:
    """The history database's file (SQLite) or a description of it, for messages."""
    url = history.url
    if url.startswith("sqlite:///"):
        return urllib.parse.unquote(url.removeprefix("sqlite:///").split("?")[0])
    return "the history database"


def _warner(observer: RunObserver | None) -> Callable[[str], None]:
    """A function that hands a warning to the observer (if it takes warnings)."""

    def warn(message: str) -> None:
        if observer is not None and hasattr(observer, "warning"):
            observer.warning(message)

    return warn


def _report_auto_isolated(plan: Plan, observer: RunObserver | None) -> None:
    """One line per matrix job isolated because its instances declare the same outputs."""
    jobs = sorted({i.job for i in plan.instances.values() if i.workspace_auto})
    say = getattr(observer, "info", None) or _warner(observer)
    for job in jobs:
        say(
            f"the matrix instances of {job} declare the same outputs: each runs in an isolated "
            f"workspace (set workspace: shared or isolated on {job} to choose)"
        )


def _report_recovered(recovered: list[Recovered], observer: RunObserver | None) -> None:
    warn = _warner(observer)
    for item in recovered:
        plural = "es" if item.killed > 1 else ""
        left = f"; killed {item.killed} process{plural} it left behind" if item.killed else ""
        warn(
            f"run #{item.run.number} of {item.run.pipeline} was abandoned by its buildyard process: "
            f"recorded as cancelled{left}"
        )


class CacheStack:
    """The cache objects of one run: job cache (local + optional remote), hasher with its stat cache."""

    def __init__(self, options: RunOptions, home: Path, warn: Callable[[str], None]) -> None:
        from buildyard.cache import (  # noqa: PLC0415 - the cache stack is imported only when used
            DependencyCache,
            FileHasher,
            InputIndex,
            open_job_cache,
            open_stat_cache,
        )

        cache_dir = options.cache_dir or (home / "cas")
        self.job_cache = open_job_cache(
            options.project_dir,
            cache_dir=cache_dir,
            remote_url=options.remote_cache,
            remote_token=load_settings(options.project_dir).remote_cache_token,
            warn=warn,
        )
        self.stat_cache = open_stat_cache(home)
        self.hasher = FileHasher(self.stat_cache)
        self.index = InputIndex(options.project_dir)
        self.deps = DependencyCache(self.job_cache.local.store)
        self.warn = warn

    def wrap(self, inner: Executor) -> Executor:
        """``inner`` behind the job cache."""
        from buildyard.engine.caching import CachingExecutor  # noqa: PLC0415

        return CachingExecutor(
            inner,
            self.job_cache,
            hasher=self.hasher,
            index=self.index,
            salt=self.job_cache.local.store.salt(),
            dependency_cache=self.deps,
            warn=self.warn,
        )

    def close(self) -> None:
        """Persist the stat cache and release connections."""
        try:
            self.stat_cache.save()
        except OSError as exc:
            self.warn(f"could not save the stat cache ({exc})")
        try:
            self.job_cache.close()
        except OSError as exc:  # e.g. a full disk: the cache's event log is an optimisation
            self.warn(f"could not close the cache cleanly ({exc.strerror or exc})")


def open_cache_stack(options: RunOptions, home: Path, observer: RunObserver | None) -> CacheStack:
    """The run's cache stack; warnings go to the observer."""
    return CacheStack(options, home, _warner(observer))


async def _drive(scheduler: Scheduler, recorder: Recorder) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, scheduler.cancel)

    async def flusher() -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            try:
                recorder.flush(scheduler)
            except Exception as exc:
                if not is_disk_full(exc):
                    raise
                recorder.failure = exc  # nothing more can be recorded: stop the jobs, report it
                scheduler.cancel()
                return

    task = asyncio.create_task(flusher())
    try:
        await scheduler.run()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _under(paths: tuple[str, ...], directory: str | None) -> tuple[str, ...]:
    """``paths`` (relative to the project) that lie under ``directory``, relative to it."""
    if not directory or directory in (".", "./"):
        return paths
    prefix = directory.strip("/") + "/"
    return tuple(p[len(prefix) :] for p in paths if p.startswith(prefix))


def _project_relative(path: Path, project: Path) -> tuple[str, ...]:
    """``(path relative to project,)``, or ``()`` when ``path`` is outside it."""
    try:
        return (path.resolve().relative_to(project.resolve()).as_posix(),)
    except (OSError, ValueError):
        return ()
