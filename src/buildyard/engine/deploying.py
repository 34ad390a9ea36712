"""``environment:`` around any executor: deploy a verified artifact, check its health, roll back.

The outermost layer of the stack (``engine.stack``). For a deployment job it resolves the artifact,
pulls it (digests and signature verified; nothing is deployed otherwise) into
``.buildyard/deploy/<run>/<job>/``, runs the job's steps with the ``BUILDYARD_ARTIFACT_*`` and
``BUILDYARD_ENVIRONMENT*`` variables, then polls the health check. A failed health check fails the
job and, with ``auto_rollback``, deploys the environment's previous good version again (the
``rollback`` command, else the job's own steps). Every deployment and rollback is a row of the
history's ``deployments`` table. A healthy deployment promotes the artifact to the channel named
like the environment, when there is one.

Deployment jobs are never served from the job cache: deploying is the point of running them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from buildyard.engine.request import (
    DeployRequest,
    Executor,
    JobOutcome,
    JobRequest,
    OutputSink,
    StepRequest,
    log_note,
    outcome_without_steps,
)
from buildyard.engine.scheduler import JobSetupError
from buildyard.errors import UserError
from buildyard.model import JobStatus, Redeploy
from buildyard.plan.build import JobInstance, Plan
from buildyard.store.deployments import DeploymentRecord

if TYPE_CHECKING:
    from buildyard.artifacts import GateVerdict, Manifest, Repository, Verified
    from buildyard.store.history import History


def deploy_request(
    inst: JobInstance,
    *,
    plan: Plan,
    published: Mapping[str, str],
    pins: Mapping[str, str],
    approval: tuple[str, float] | None,
    dest: Path,
    run_number: int,
    force: bool = False,
    commit: str = "",
    unapproved: bool = False,
) -> DeployRequest:
    """The ``DeployRequest`` of deployment job ``inst`` (``JobSetupError`` if its artifact is ambiguous)."""
    env = inst.environment
    assert env is not None  # noqa: S101 - only called for deployments
    health = env.health_check
    approved_by, approved_at = approval if approval is not None else (None, None)
    return DeployRequest(
        environment=env.name,
        artifact=artifact_ref(inst, plan=plan, published=published, pins=pins),
        dest=str(dest),
        url=env.url or "",
        health_run=(health.run or "") if health else "",
        health_url=(health.url or "") if health else "",
        health_timeout=health.timeout if health else 0.0,
        health_interval=health.interval if health else 0.0,
        rollback=env.rollback or "",
        auto_rollback=env.auto_rollback,
        promote=env.promote,
        approved_by=approved_by,
        approved_at=approved_at,
        run_number=run_number,
        redeploy=force or env.redeploy == Redeploy.ALWAYS,
        commit=commit,
        unapproved=unapproved,
    )


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
LOCK_POLL = 0.2


@contextlib.asynccontextmanager
async def environment_lock(
    locks: Path | None, spec: DeployRequest, request: JobRequest, sink: OutputSink | None
) -> AsyncIterator[float]:
    """Hold the environment's lock file under ``locks`` (an flock) for a whole deployment: two runs
    never deploy to one environment at once — the second waits (shown live, noted in its log),
    cancellable. Yields the seconds waited. The lock is the orchestrator's: no part of the request."""
    if locks is None:
        yield 0.0
        return
    path = locks / f"{_SAFE.sub('_', spec.environment)}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        began = time.monotonic()
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told and sink is not None:
                    told = True
                    sink(
                        request.job_id,
                        f"buildyard: waiting: another run is deploying to {spec.environment}\n".encode(),
                    )
                await asyncio.sleep(LOCK_POLL)
        try:
            yield time.monotonic() - began if told else 0.0
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


#: Runs whose pulled artifacts stay on disk per pipeline (the artifacts themselves stay in the repository).
KEEP_DEPLOY_RUNS = 3


def prune_deploy_dirs(pipeline_dir: Path, current: int, keep: int = KEEP_DEPLOY_RUNS) -> list[Path]:
    """Remove the pulled copies of all but the ``keep`` newest runs up to ``current``; the removed."""
    import shutil  # noqa: PLC0415

    runs = sorted(
        (int(p.name), p) for p in pipeline_dir.glob("*") if p.name.isdigit() and int(p.name) <= current
    )
    doomed = [p for _, p in runs[:-keep]] if len(runs) > keep else []
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def artifact_ref(
    inst: JobInstance, *, plan: Plan, published: Mapping[str, str], pins: Mapping[str, str]
) -> str:
    """What a deployment deploys: a pinned ref (``deploy rollback``), a declared ``NAME@…``, else the
    version a job it needs published in this run (of the declared ``NAME``, if any), else the latest
    ``NAME`` in the repository; ``""`` when there is none of these: a script deployment (``kubectl
    apply``, ``rsync``…) that the environment tracks by the commit it deploys."""
    env = inst.environment
    assert env is not None  # noqa: S101 - only called for deployments
    pinned = pins.get(inst.job) or pins.get(inst.id)
    if pinned:
        return pinned
    declared = env.artifact
    if declared is not None and "@" in declared:
        return declared
    refs = sorted(
        {
            published[i]
            for i in _upstream(inst, plan)
            if i in published and (declared is None or published[i].partition("@")[0] == declared)
        }
    )
    if len(refs) == 1:
        return refs[0]
    if len(refs) > 1:
        raise JobSetupError(
            f"environment {env.name}: the jobs it needs published several versions ({', '.join(refs)}); "
            "set environment.artifact to NAME@VERSION"
        )
    return declared or ""


def _upstream(inst: JobInstance, plan: Plan) -> set[str]:
    """Every instance ``inst`` depends on, transitively."""
    seen: set[str] = set()
    stack = list(inst.needs)
    while stack:
        iid = stack.pop()
        if iid not in seen and iid in plan.instances:
            seen.add(iid)
            stack += plan.instances[iid].needs
    return seen


def gate_check(history: History) -> Callable[[Manifest], GateVerdict]:
    """The promotion policy's gate check: the verdict of the artifact's source run, from history."""
    from buildyard.artifacts import GateVerdict  # noqa: PLC0415 - artifacts are imported lazily

    def check(manifest: Manifest) -> GateVerdict:
        run_id = manifest.build.run_id
        if not run_id:
            return GateVerdict(False, "the artifact was not built by a recorded run")
        passed, detail = history.gate_verdict(run_id)
        return GateVerdict(passed, detail)

    return check


@dataclass(frozen=True, slots=True)
class _Pulled:
    """What a deployment deploys: a verified artifact pulled into ``dest``, or (``verified`` None) the
    commit of a script deployment, recorded with the artifact name ``""`` and the commit as version."""

    verified: Verified | None
    dest: Path
    name: str
    version: str

    @classmethod
    def artifact(cls, verified: Verified, dest: Path) -> _Pulled:
        return cls(verified, dest, verified.manifest.name, verified.manifest.version)

    @property
    def what(self) -> str:
        return f"{self.name}@{self.version}" if self.verified is not None else f"commit {self.version[:12]}"


def live_version(history: History, environment: str) -> DeploymentRecord | None:
    """What ``environment`` runs now: its newest finished deployment when that one succeeded."""
    for record in history.deployments(environment, limit=20):
        if record.status == "running":
            continue  # an unfinished one (the abandoned-run check closes it); look further back
        return record if record.status == "success" else None
    return None


class DeployingExecutor:
    """Runs deployment jobs (requests with ``deploy``); passes every other request through."""

    def __init__(
        self,
        inner: Executor,
        *,
        project: Path,
        history: History,
        locks: Path | None = None,
        written: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``locks``: the directory of the environments' lock files (None: no lock);
        ``written``: waits until the run's history writes so far are done (its gates' rows, which
        promotion checks), when they are written off the loop."""
        self.inner = inner
        self.locks = locks
        self.project = project
        self.history = history
        self.written = written
        self._repo: Repository | None = None

    def repo(self) -> Repository:
        """The project's artifact repository (opened once)."""
        if self._repo is None:
            from buildyard.artifacts import open_repository  # noqa: PLC0415 - only with environment:

            self._repo = open_repository(self.project)
        return self._repo

    async def execute(self, request: JobRequest, sink: OutputSink | None = None) -> JobOutcome:
        """Pull, deploy, check health, roll back if asked; record the deployment."""
        spec = request.deploy
        if spec is None:
            return await self.inner.execute(request, sink)
        if self.written is not None:
            await self.written()
        async with environment_lock(self.locks, spec, request, sink) as waited:
            return await self._locked(request, spec, sink, waited)

    async def _locked(
        self, request: JobRequest, spec: DeployRequest, sink: OutputSink | None, waited: float
    ) -> JobOutcome:
        started_at, start = time.time(), time.monotonic()

        def ended(status: JobStatus, note: str, deployed: str = "") -> JobOutcome:
            Path(request.log_path).parent.mkdir(parents=True, exist_ok=True)
            Path(request.log_path).write_bytes(f"buildyard: {note}\n".encode())
            if sink is not None:
                sink(request.job_id, f"buildyard: {note}\n".encode())
            return outcome_without_steps(request, status, started_at, note, deployed=deployed)

        if not spec.artifact:
            pulled = _Pulled(None, Path(spec.dest), "", spec.commit or "unknown")
        else:
            try:
                live = None if spec.redeploy else await asyncio.to_thread(self._live_same, spec)
                if live is not None:
                    return ended(JobStatus.SUCCESS, live[0], live[1])
                if spec.unapproved:
                    return ended(
                        JobStatus.FAILED,
                        f"not deployed: {spec.environment} changed after this run found its version already "
                        "live, so the deployment needs its approval: run again",
                    )
                pulled = await asyncio.to_thread(self._pull, spec.artifact, Path(spec.dest))
            except UserError as exc:
                return ended(JobStatus.FAILED, f"deploy to {spec.environment} refused: {exc}")
        deployment = self._start(request, spec, pulled)
        try:
            outcome = await self._deploy(request, spec, pulled, deployment, sink, waited)
        except asyncio.CancelledError:
            self.history.finish_deployment(deployment, "failed")  # a no-op if it already ended
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. an unusable health-check URL: the job fails, not the run
            self.history.finish_deployment(deployment, "failed")
            note = f"deployment to {spec.environment} failed: {exc}"
            log_note(request, note, sink)
            outcome = outcome_without_steps(request, JobStatus.FAILED, started_at, note)
        await asyncio.to_thread(prune_deploy_dirs, Path(spec.dest).parent.parent, spec.run_number)
        return replace(
            outcome,
            deployed=f"{pulled.name}@{pulled.version}" if pulled.verified is not None else "",
            finished_at=time.time(),
            duration_s=time.monotonic() - start,
        )

    # --- one deployment ---------------------------------------------------------------------------

    async def _deploy(
        self,
        request: JobRequest,
        spec: DeployRequest,
        pulled: _Pulled,
        deployment: int,
        sink: OutputSink | None,
        waited: float = 0.0,
    ) -> JobOutcome:
        deploy_request = self._with_artifact(request, spec, pulled)
        if pulled.verified is not None:
            note = f"pulled {pulled.what} (verified) into {pulled.dest}"
        else:
            note = f"deploying {pulled.what} (a script deployment: no artifact to pull)"
        if waited:
            note = (
                f"waited {waited:.1f}s for another run's deployment to {spec.environment}\nbuildyard: {note}"
            )
        if request.attempt > 1:  # the executor appends to the log of earlier attempts
            log_note(request, note, sink)
            outcome = await self.inner.execute(deploy_request, sink)
        else:  # the executor starts the log afresh: put the note first once it is written
            if sink is not None:
                sink(request.job_id, f"buildyard: {note}\n".encode())
            outcome = await self.inner.execute(deploy_request, sink)
            await asyncio.to_thread(_prepend, Path(request.log_path), f"buildyard: {note}\n".encode())
        what = f"{pulled.what} to {spec.environment}"
        if outcome.status != JobStatus.SUCCESS:
            await asyncio.to_thread(self.history.finish_deployment, deployment, "failed")
            log_note(request, f"deployment of {what} failed", sink)
            return outcome
        problem = await self._health(deploy_request, spec, sink, suffix="health")
        if problem is None:
            await asyncio.to_thread(self.history.finish_deployment, deployment, "success")
            log_note(request, f"deployed {what}" + (" (healthy)" if _has_health(spec) else ""), sink)
            if spec.promote and pulled.verified is not None:
                await asyncio.to_thread(self._promote, request, spec, pulled, sink)
            return outcome
        message = f"health check failed: {problem}"
        log_note(request, f"deployment of {what}: {message}", sink)
        await asyncio.to_thread(self.history.finish_deployment, deployment, "failed")
        if spec.auto_rollback:
            message += "; " + await self._rollback(request, spec, pulled, deployment, sink)
        return replace(outcome, status=JobStatus.FAILED, exit_code=None, message=message)

    def _pull(self, ref: str, dest: Path) -> _Pulled:
        if dest.exists():  # a retry pulls again into a clean directory
            import shutil  # noqa: PLC0415

            shutil.rmtree(dest)
        return _Pulled.artifact(self.repo().pull(ref, dest), dest)

    async def unchanged(self, spec: DeployRequest) -> str | None:
        """Why deploying ``spec`` would change nothing (its version already live, no redeploy asked),
        else ``None``; a deployment that changes nothing needs no approval."""
        if spec.redeploy or not spec.artifact:
            return None
        if self.written is not None:
            await self.written()
        try:
            live = await asyncio.to_thread(self._live_same, spec)
        except UserError:
            return None  # the deployment itself will say what is wrong
        return live[0] if live is not None else None

    def _live_same(self, spec: DeployRequest) -> tuple[str, str] | None:
        """``(note, NAME@VERSION)`` when ``spec.environment`` already runs the version ``spec`` names."""
        record = self.repo().resolve(spec.artifact)
        live = live_version(self.history, spec.environment)
        if live is None or (live.artifact, live.version) != (record.artifact, record.version):
            return None
        since = f" since run #{live.run_number}" if live.run_number else ""
        note = (
            f"not redeployed: {record.name} already runs in {spec.environment}{since} "
            "(redeploy: always or run --force deploys it again)"
        )
        return note, record.name

    def _start(
        self, request: JobRequest, spec: DeployRequest, pulled: _Pulled, rollback_of: int | None = None
    ) -> int:
        """Record the deployment as running (on the loop: a cancellation cannot lose the row)."""
        record = DeploymentRecord(
            environment=spec.environment,
            artifact=pulled.name,
            version=pulled.version,
            run_id=request.run_id,
            job_id=request.job_id,
            status="running",
            started_at=time.time(),
            url=spec.url,
            approved_by=spec.approved_by,
            approved_at=spec.approved_at,
            rollback_of=rollback_of,
        )
        return self.history.start_deployment(record)

    def _with_artifact(self, request: JobRequest, spec: DeployRequest, pulled: _Pulled) -> JobRequest:
        env = dict(request.env)
        if pulled.verified is not None:
            from buildyard.artifacts import artifact_env  # noqa: PLC0415

            env.update(artifact_env(pulled.verified, pulled.dest))
        env.update(
            {
                "BUILDYARD_ENVIRONMENT": spec.environment,
                "BUILDYARD_ENVIRONMENT_URL": spec.url,
                "BUILDYARD_DEPLOY_VERSION": pulled.version,
            }
        )
        cache = replace(request.cache, job_cache=False) if request.cache is not None else None
        return replace(request, env=tuple(env.items()), cache=cache, deploy=None)

    # --- health -----------------------------------------------------------------------------------

    async def _health(
        self, request: JobRequest, spec: DeployRequest, sink: OutputSink | None, *, suffix: str
    ) -> str | None:
        """``None`` when healthy (or no health check), else why not, after polling until the timeout."""
        if not _has_health(spec):
            return None
        deadline = time.monotonic() + spec.health_timeout
        tries = 0
        last = "not checked"
        while True:
            tries += 1
            if spec.health_url:
                last = await _get(spec.health_url, max(0.1, deadline - time.monotonic()))
                ok = last.startswith("HTTP 2")
            else:
                remaining = max(0.1, deadline - time.monotonic())
                ok, last = await self._command(
                    request, spec.health_run, "health check", sink, suffix, remaining
                )
            if ok:
                log_note(request, f"health check passed ({last}, try {tries})", sink)
                return None
            if time.monotonic() + spec.health_interval > deadline:
                return f"{last} after {tries} tries in {spec.health_timeout:g}s"
            await asyncio.sleep(spec.health_interval)

    async def _command(
        self,
        request: JobRequest,
        script: str,
        name: str,
        sink: OutputSink | None,
        suffix: str,
        timeout: float | None,
    ) -> tuple[bool, str]:
        """Run ``script`` like a step of the job (same env and shell); its log is appended to the job's."""
        shell = request.steps[0].shell if request.steps else "bash -eo pipefail"
        side_log = f"{request.log_path}.{suffix}"
        step = StepRequest(name=name, shell=shell, script=script)
        sub = replace(
            request,
            steps=(step,),
            log_path=side_log,
            attempt=1,
            timeout=timeout,
            side=suffix,
            publish=None,
            cache=None,
            output_globs=(),
        )
        outcome = await self.inner.execute(sub, sink)
        ok = outcome.status == JobStatus.SUCCESS
        result = "exit 0" if ok else (outcome.message or f"{name} {outcome.status}")
        self._append(request, side_log, f"──── {name}: {result} ────")
        return ok, result

    # --- rollback ---------------------------------------------------------------------------------

    async def _rollback(
        self,
        request: JobRequest,
        spec: DeployRequest,
        failed: _Pulled,
        deployment: int,
        sink: OutputSink | None,
    ) -> str:
        """Deploy the previous good version again; return what happened (for the job's message)."""
        previous = await asyncio.to_thread(
            self.history.last_good_version,
            spec.environment,
            artifact=failed.name,
            exclude=failed.version,
            before=deployment,
        )
        what = failed.name or "script deployment"
        if previous is None:
            log_note(request, f"no previous good version of {what} in {spec.environment}", sink)
            return "no previous good version to roll back to"
        if failed.verified is None:
            if not spec.rollback:
                log_note(request, "a script deployment rolls back only with a rollback command", sink)
                return "no rollback command for a script deployment"
            pulled = _Pulled(None, Path(f"{spec.dest}.rollback"), "", previous.version)
        else:
            try:
                pulled = await asyncio.to_thread(
                    self._pull, f"{failed.name}@{previous.version}", Path(f"{spec.dest}.rollback")
                )
            except UserError as exc:
                log_note(request, f"rollback to {failed.name}@{previous.version} refused: {exc}", sink)
                return f"rollback to {previous.version} refused: {exc}"
        ref = pulled.what
        back = self._start(request, replace(spec, approved_by=None, approved_at=None), pulled, deployment)
        log_note(request, f"rolling back {spec.environment} to {ref}", sink)
        rollback_request = self._with_artifact(request, spec, pulled)
        try:
            if spec.rollback:
                ok, why = await self._command(
                    rollback_request, spec.rollback, "rollback", sink, "rollback", request.timeout
                )
            else:
                sub = replace(
                    rollback_request,
                    log_path=f"{request.log_path}.rollback",
                    attempt=1,
                    side="rollback",
                    publish=None,
                )
                outcome = await self.inner.execute(sub, sink)
                ok, why = outcome.status == JobStatus.SUCCESS, outcome.message
                self._append(request, sub.log_path, f"──── rollback (the job's steps): {why or 'ok'} ────")
            if ok:
                problem = await self._health(rollback_request, spec, sink, suffix="rollback-health")
                ok, why = problem is None, f"health check failed: {problem}"
        except asyncio.CancelledError:
            self.history.finish_deployment(back, "failed")
            raise
        await asyncio.to_thread(self.history.finish_deployment, back, "success" if ok else "failed")
        if ok:
            await asyncio.to_thread(self.history.finish_deployment, deployment, "rolled_back")
            log_note(request, f"rolled back {spec.environment} to {ref}", sink)
            return f"rolled back to {previous.version}"
        log_note(request, f"rollback to {ref} failed: {why}", sink)
        return f"rollback to {previous.version} failed: {why}"

    # --- promotion --------------------------------------------------------------------------------

    def _promote(
        self, request: JobRequest, spec: DeployRequest, pulled: _Pulled, sink: OutputSink | None
    ) -> None:
        """Point the channel named like the environment at the deployed version (if such a channel exists)."""
        from buildyard.artifacts import ArtifactError, promote  # noqa: PLC0415
        from buildyard.artifacts.audit import current_actor  # noqa: PLC0415

        repo = self.repo()
        if spec.environment not in repo.config.names:
            return
        try:
            result = promote(
                repo,
                f"{pulled.name}@{pulled.version}",
                spec.environment,
                actor=spec.approved_by or current_actor(),
                reason=f"deployed by run #{spec.run_number} job {request.job_id}",
                gates_check=gate_check(self.history),
            )
        except ArtifactError as exc:
            log_note(request, f"not promoted to channel {spec.environment}: {exc}", sink)
            return
        if result.changed:
            log_note(request, f"promoted {pulled.name}@{pulled.version} to channel {spec.environment}", sink)

    # --- log --------------------------------------------------------------------------------------

    @staticmethod
    def _append(request: JobRequest, side_log: str, header: str) -> None:
        side = Path(side_log)
        try:
            body = side.read_bytes()
        except OSError:
            body = b""  # the command printed nothing (logs are created by the first write)
        with contextlib.suppress(OSError), Path(request.log_path).open("ab") as log:
            log.write(f"{header}\n".encode() + body)
        with contextlib.suppress(OSError):
            side.unlink()


def _prepend(path: Path, data: bytes) -> None:
    """Put ``data`` before a log the executor wrote (it truncates the log when a job starts)."""
    try:
        body = path.read_bytes()
    except OSError:
        body = b""
    path.write_bytes(data + body)


def _has_health(spec: DeployRequest) -> bool:
    return bool(spec.health_run or spec.health_url)


async def _get(url: str, timeout: float) -> str:
    """``HTTP <status>`` of a GET to ``url``, or the connection error in a few words."""
    import httpx  # noqa: PLC0415 - only for URL health checks

    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client:
            response = await client.get(url)
    except Exception as exc:  # noqa: BLE001 - any failed probe (bad URL, refused, reset…) means unhealthy
        return f"{type(exc).__name__} for {url}"
    return f"HTTP {response.status_code} from {url}"
