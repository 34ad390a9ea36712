"""The DAG scheduler: starts each job the moment its own dependencies are done.

No stage or level barriers. Ready jobs wait in a heap ordered by longest remaining critical path and
are started while ``-j`` slots are free (a job may weigh several slots; smaller ready jobs backfill).
It knows nothing about how a job runs: it hands a ``JobRequest`` to an ``Executor`` and reacts to the
``JobOutcome``. Retries with exponential backoff, fail-fast and cancellation live here.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from buildyard.engine.request import (
    CacheStatus,
    Executor,
    GateOutcome,
    JobOutcome,
    JobRequest,
    OutputSink,
    StepOutcome,
    TestCaseRun,
)
from buildyard.errors import BuildyardError
from buildyard.model import JobStatus, RunStatus, SkipReason, When
from buildyard.plan.build import JobInstance, Plan, Skip
from buildyard.spec import expr

if TYPE_CHECKING:
    from buildyard.cache.keys import MissDetail


class JobSetupError(BuildyardError):
    """Raised by a request factory when a job cannot start (e.g. a secret is missing)."""


@dataclass
class JobResult:
    """Final record of one job instance in a run."""

    id: str
    job: str
    stage: str | None
    matrix: dict[str, str]
    status: JobStatus = JobStatus.PENDING
    attempts: int = 0
    exit_code: int | None = None
    ready_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    cpu_seconds: float | None = None
    peak_rss: int | None = None
    skip_reason: SkipReason | None = None
    message: str = ""
    log_path: str = ""
    allow_failure: bool = False
    steps: tuple[StepOutcome, ...] = ()
    cache_key: str = ""
    cache_status: CacheStatus = CacheStatus.OFF
    saved_s: float = 0.0
    miss_reasons: tuple[MissDetail, ...] = ()
    gate_results: tuple[GateOutcome, ...] = ()
    test_results: tuple[TestCaseRun, ...] = ()
    published: str = ""
    deployed: str = ""
    log_cut: int = 0
    log_problem: str = ""

    @property
    def failed_gate(self) -> GateOutcome | None:
        """The first gate that failed the job (None when no gate did)."""
        return next((g for g in self.gate_results if g.failed), None)

    @property
    def blocks_run(self) -> bool:
        """True when this result fails the run."""
        return self.status.is_failure and not self.allow_failure

    @property
    def satisfies_dependents(self) -> bool:
        """True when ``on_success`` dependents may start."""
        return self.status.is_ok or (self.status.is_failure and self.allow_failure)


@dataclass(frozen=True, slots=True)
class JobStarted:
    """A job attempt started."""

    job_id: str
    attempt: int
    at: float


@dataclass(frozen=True, slots=True)
class JobWaiting:
    """A deployment job is ready but waits for approval (it holds no slot meanwhile)."""

    result: JobResult
    timeout: float


@dataclass(frozen=True, slots=True)
class JobRetrying:
    """An attempt failed and the job will be retried after ``delay`` seconds."""

    job_id: str
    attempt: int
    delay: float
    outcome: JobOutcome


@dataclass(frozen=True, slots=True)
class JobFinished:
    """A job reached its final status (ran, skipped, cancelled…)."""

    result: JobResult


RunEvent = JobStarted | JobRetrying | JobFinished | JobWaiting
RequestFactory = Callable[[JobInstance, int], JobRequest]
#: Waits for the decision on a deployment that needs approval: ``None`` to run it, else why not.
Approver = Callable[[JobInstance], Awaitable[Skip | None]]
#: ``None`` when a deployment needs its approval; else why it does not (it would change nothing).
ApprovalCheck = Callable[[JobInstance], Awaitable[str | None]]


class Lease(Protocol):
    """What lets a run execute jobs at all, given back while the run only waits for approvals (a
    server's runner: a run waiting for a deployment's approval holds none).

    The run holds it when it starts. ``release`` is called on the event loop (it must not block)
    when no job runs and none is ready while a deployment awaits its decision; ``acquire`` is
    awaited, after a release, before the next job starts (an approval, or a rejection that made a
    ``when: always`` job ready). So jobs only ever execute while the run holds the lease.
    """

    def release(self) -> None:
        """Give the lease back (without blocking)."""

    async def acquire(self) -> None:
        """Wait until the lease is held again."""


@dataclass
class _State:
    results: dict[str, JobResult]
    remaining: dict[str, int]
    ready: list[tuple[float, int, str]] = field(default_factory=list)
    running: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    waiting: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    used_slots: int = 0
    finished: int = 0


class Scheduler:
    """Runs a ``Plan`` through an ``Executor`` with ``slots`` parallel slots."""

    def __init__(
        self,
        plan: Plan,
        executor: Executor,
        make_request: RequestFactory,
        *,
        slots: int,
        fail_fast: bool = False,
        on_event: Callable[[RunEvent], None] | None = None,
        sink: OutputSink | None = None,
        context: Mapping[str, Any] | None = None,
        approver: Approver | None = None,
        approval_needless: ApprovalCheck | None = None,
        clock: Callable[[], float] = time.time,
        lease: Lease | None = None,
    ) -> None:
        """``clock``: the wall clock of the recorded times (tests pass a virtual one, see
        ``buildyard.testing.clock``); waits (retry backoff) are on the event loop's clock.
        ``approval_needless``: asked before a deployment waits for its approval; a deployment that
        would change nothing (its version already live) starts without one. ``lease``: released
        while the run only waits for approvals, acquired again before a job starts (see ``Lease``)."""
        self.plan = plan
        self.clock = clock
        self.approver = approver
        self.approval_needless = approval_needless
        self.lease = lease
        self._leased = True  # the run starts holding its lease
        self._acquiring: asyncio.Task[None] | None = None
        self.executor = executor
        self.make_request = make_request
        self.slots = max(1, slots)
        self.fail_fast = fail_fast
        self.on_event = on_event or (lambda _e: None)
        self.sink = sink
        self.context = dict(context or {})
        self._order = {iid: i for i, iid in enumerate(plan.instances)}
        self._stopping: JobStatus | None = None  # CANCELLED (Ctrl-C) or SKIPPED (fail-fast)
        #: Unexpected exceptions raised while running jobs (bugs): the run finishes, then they surface.
        self.internal_errors: list[Exception] = []
        self._done: asyncio.Future[None] | None = None
        self._state = _State(
            results={
                iid: JobResult(iid, inst.job, inst.stage, dict(inst.matrix), allow_failure=inst.allow_failure)
                for iid, inst in plan.instances.items()
            },
            remaining={iid: len(inst.needs) for iid, inst in plan.instances.items()},
        )

    @property
    def results(self) -> dict[str, JobResult]:
        """Results so far (final once ``run`` returned)."""
        return self._state.results

    def status(self) -> RunStatus:
        """The run status implied by the job results."""
        if self._stopping == JobStatus.CANCELLED:
            return RunStatus.CANCELLED
        if any(r.blocks_run for r in self._state.results.values()):
            return RunStatus.FAILED
        if any(r.status == JobStatus.CANCELLED for r in self._state.results.values()):
            return RunStatus.CANCELLED  # a job superseded by a newer one of its concurrency group
        return RunStatus.SUCCESS

    async def run(self) -> dict[str, JobResult]:
        """Run every instance to a final status and return the results."""
        self._done = asyncio.get_running_loop().create_future()
        if not self.plan.instances:
            return self._state.results
        # The roots, listed before any is decided: a root skipped at once makes its dependents ready
        # inside this loop, and listing them again here would start them twice.
        roots = [iid for iid, count in self._state.remaining.items() if count == 0]
        for iid in roots:
            self._on_ready(iid)
        self._dispatch()
        await self._done
        return self._state.results

    def cancel(self) -> None:
        """Cancel the run: running jobs are killed, pending ones never start."""
        self._stop(JobStatus.CANCELLED)

    # --- internals --------------------------------------------------------------------------------

    def _stop(self, how: JobStatus) -> None:
        if self._stopping is not None:
            if how == JobStatus.CANCELLED:
                self._stopping = how
            return
        self._stopping = how
        for task in [*self._state.running.values(), *self._state.waiting.values()]:
            task.cancel()
        if self._acquiring is not None:
            self._acquiring.cancel()
        self._state.ready.clear()
        for iid, result in self._state.results.items():
            if not result.status.is_final and iid not in self._state.running:
                reason = SkipReason.FAIL_FAST if how == JobStatus.SKIPPED else None
                message = "not started: --fail-fast after a failure" if reason else "run cancelled"
                self._finish(iid, status=how, reason=reason, message=message)

    def _on_ready(self, iid: str) -> None:
        result = self._state.results[iid]
        result.ready_at = self.clock()
        decision = self._decide(iid)
        inst = self.plan.instances[iid]
        if decision is None and inst.awaits_approval and self.approver is None:
            decision = Skip(SkipReason.REJECTED, "needs approval and this run cannot wait for one")
        if decision is None and inst.awaits_approval and self.approver is not None:
            result.status = JobStatus.WAITING
            result.message = "waiting for approval"
            self._state.waiting[iid] = asyncio.create_task(self._await_approval(iid), name=f"approve {iid}")
        elif decision is None:
            heapq.heappush(self._state.ready, (-self.plan.priority[iid], self._order[iid], iid))
        else:
            status = {
                SkipReason.MANUAL: JobStatus.MANUAL,
                SkipReason.CONDITION_ERROR: JobStatus.FAILED,
            }.get(decision.reason, JobStatus.SKIPPED)
            self._finish(iid, status=status, reason=decision.reason, message=decision.message)

    def _decide(self, iid: str) -> Skip | None:
        """``None`` to run the instance, or why it does not run."""
        inst = self.plan.instances[iid]
        static = self.plan.skips.get(iid)
        if static is not None:
            return static
        deps = [self._state.results[d] for d in inst.needs]
        failed = [d for d in deps if d.status.is_failure and not d.allow_failure]
        if inst.when == When.ON_FAILURE:
            if not failed:
                return Skip(SkipReason.NOT_ON_FAILURE, "when: on_failure and no dependency failed")
        elif inst.when != When.ALWAYS:
            if failed:
                why = f": {failed[0].message}" if failed[0].failed_gate is not None else ""
                return Skip(
                    SkipReason.DEPENDENCY_FAILED, f"dependency '{failed[0].id}' {failed[0].status}{why}"
                )
            blocked = [d for d in deps if not d.satisfies_dependents]
            if blocked:
                what = (
                    "was not run (manual)"
                    if blocked[0].status == JobStatus.MANUAL
                    else str(blocked[0].status)
                )
                return Skip(SkipReason.DEPENDENCY_SKIPPED, f"dependency '{blocked[0].id}' {what}")
        if inst.condition is not None:
            ctx = {**self.context, "matrix": dict(inst.matrix), "needs": self._needs_context(deps)}
            try:
                if not expr.is_true(inst.condition, ctx):
                    return Skip(SkipReason.CONDITION_FALSE, f"condition is false: {inst.condition}")
            except expr.ExprError as exc:
                return Skip(SkipReason.CONDITION_ERROR, str(exc))
        return None

    @staticmethod
    def _needs_context(deps: list[JobResult]) -> dict[str, dict[str, str]]:
        by_job: dict[str, list[JobResult]] = {}
        for d in deps:
            by_job.setdefault(d.job, []).append(d)
        out: dict[str, dict[str, str]] = {}
        for job, results in by_job.items():
            worst = next((r for r in results if r.status.is_failure), None) or next(
                (r for r in results if not r.status.is_ok), results[0]
            )
            out[job] = {"status": str(worst.status), "result": str(worst.status)}
        return out

    async def _await_approval(self, iid: str) -> None:
        assert self.approver is not None  # noqa: S101 - only scheduled with an approver
        inst = self.plan.instances[iid]
        try:
            needless = await self.approval_needless(inst) if self.approval_needless is not None else None
            if needless is None:
                env = inst.environment
                result = self._state.results[iid]
                self.on_event(JobWaiting(replace(result), env.approval_timeout if env else 0.0))
                decision = await self.approver(inst)
            else:
                decision = None
        except asyncio.CancelledError:
            return  # _stop finishes the job as cancelled
        except Exception as exc:  # noqa: BLE001 - a bug must not hang the run: record it, re-raise later
            self.internal_errors.append(exc)
            self._finish(iid, status=JobStatus.FAILED, message=f"buildyard internal error: {exc!r}")
            self._dispatch()
            return
        finally:
            self._state.waiting.pop(iid, None)
        if self._stopping is not None:
            return
        if decision is not None:
            self._finish(iid, status=JobStatus.SKIPPED, reason=decision.reason, message=decision.message)
            self._dispatch()  # its `when: always` dependents may be ready now (else the run would hang)
            return
        self._state.results[iid].status = JobStatus.PENDING
        self._state.results[iid].message = ""
        heapq.heappush(self._state.ready, (-self.plan.priority[iid], self._order[iid], iid))
        self._dispatch()

    def _weight(self, iid: str) -> int:
        return min(self.plan.instances[iid].cpus, self.slots)

    def _dispatch(self) -> None:
        st = self._state
        if self._stopping is not None:
            return
        if self.lease is not None and not self._leased:
            if st.ready and self._acquiring is None:
                self._acquiring = asyncio.create_task(self._acquire(self.lease), name="acquire lease")
            return
        skipped: list[tuple[float, int, str]] = []
        while st.ready and st.used_slots < self.slots:
            item = heapq.heappop(st.ready)
            iid = item[2]
            weight = self._weight(iid)
            if st.used_slots + weight > self.slots:
                skipped.append(item)  # too big for the free slots now; smaller jobs may backfill
                continue
            st.used_slots += weight
            st.running[iid] = asyncio.create_task(self._run(iid), name=iid)
        for item in skipped:
            heapq.heappush(st.ready, item)
        if self.lease is not None and st.waiting and not st.running and not st.ready:
            self._leased = False  # only approvals awaited: nothing executes until the lease is back
            self.lease.release()

    async def _acquire(self, lease: Lease) -> None:
        try:
            await lease.acquire()
        except asyncio.CancelledError:
            return  # the run is stopping
        except Exception as exc:  # noqa: BLE001 - a bug must not hang the run: record it, go on
            self.internal_errors.append(exc)
        finally:
            self._acquiring = None
        self._leased = True
        self._dispatch()

    async def _run(self, iid: str) -> None:
        inst = self.plan.instances[iid]
        result = self._state.results[iid]
        result.status = JobStatus.RUNNING
        outcome: JobOutcome | None = None
        bug = ""
        try:
            attempt = 0
            while True:
                attempt += 1
                result.attempts = attempt
                try:
                    request = self.make_request(inst, attempt)
                except JobSetupError as exc:
                    self._finish(iid, status=JobStatus.FAILED, message=str(exc))
                    return
                started = self.clock()
                if result.started_at is None:
                    result.started_at = started
                self.on_event(JobStarted(iid, attempt, started))
                outcome = await self.executor.execute(request, self.sink)
                if not self._should_retry(inst, outcome, attempt):
                    break
                delay = min(inst.retry.backoff * 2 ** (attempt - 1), inst.retry.max_backoff)
                self.on_event(JobRetrying(iid, attempt, delay, outcome))
                await asyncio.sleep(delay)
        except Exception as exc:  # noqa: BLE001 - a bug must not hang the run: record it, re-raise later
            self.internal_errors.append(exc)
            outcome = None
            bug = f"buildyard internal error: {exc!r}"
        except asyncio.CancelledError:
            why = "cancelled by --fail-fast" if self._stopping == JobStatus.SKIPPED else "cancelled"
            self._finish(iid, status=JobStatus.CANCELLED, message=why)
            return
        finally:
            self._state.used_slots -= self._weight(iid)
            self._state.running.pop(iid, None)
        if outcome is None:
            self._finish(iid, status=JobStatus.FAILED, message=bug)
        elif outcome.status == JobStatus.FAILED and outcome.exit_code in inst.skip_exit_codes:
            # the job decided at run time that it has nothing to do (skip_exit_codes)
            steps = tuple(
                replace(s, status=JobStatus.SKIPPED) if s.status == JobStatus.FAILED else s
                for s in outcome.steps
            )
            self._finish(
                iid,
                status=JobStatus.SKIPPED,
                reason=SkipReason.CONDITION_FALSE,
                message=f"the job skipped itself (exit {outcome.exit_code}, skip_exit_codes)",
                outcome=replace(outcome, status=JobStatus.SKIPPED, steps=steps),
            )
        else:
            self._finish(iid, status=outcome.status, outcome=outcome, message=outcome.message)
        self._dispatch()  # after a bug too: jobs made ready by this one (when: always, the gates) must start

    @staticmethod
    def _should_retry(inst: JobInstance, outcome: JobOutcome, attempt: int) -> bool:
        if outcome.status not in (JobStatus.FAILED, JobStatus.TIMED_OUT) or attempt > inst.retry.max:
            return False
        if outcome.status == JobStatus.FAILED and outcome.exit_code in inst.skip_exit_codes:
            return False
        when = inst.retry.when
        if not when:
            return True
        if outcome.status == JobStatus.TIMED_OUT:
            return "timeout" in when
        return outcome.exit_code in when

    def _finish(
        self,
        iid: str,
        *,
        status: JobStatus,
        reason: SkipReason | None = None,
        message: str = "",
        outcome: JobOutcome | None = None,
    ) -> None:
        st = self._state
        result = st.results[iid]
        if result.status.is_final:
            return
        result.status = status
        result.skip_reason = reason
        result.message = message
        if outcome is not None:
            result.exit_code = outcome.exit_code
            if (
                status == JobStatus.FAILED
                and outcome.exit_code in self.plan.instances[iid].allow_failure_codes
            ):
                result.allow_failure = True  # allow_failure: {exit_codes}: this exit is an allowed failure
            result.finished_at = outcome.finished_at
            result.duration_s = (
                outcome.finished_at - result.started_at if result.started_at else outcome.duration_s
            )
            result.cpu_seconds = outcome.cpu_seconds
            result.peak_rss = outcome.peak_rss
            result.log_path = outcome.log_path
            result.steps = outcome.steps
            result.cache_key = outcome.cache_key
            result.cache_status = outcome.cache_status
            result.saved_s = outcome.saved_s
            result.miss_reasons = outcome.miss_reasons
            result.gate_results = outcome.gate_results
            result.test_results = outcome.test_results
            result.published = outcome.published
            result.deployed = outcome.deployed
            result.log_cut = outcome.log_cut
            result.log_problem = outcome.log_problem
        elif status == JobStatus.CANCELLED and result.started_at is not None:
            result.finished_at = self.clock()
            result.duration_s = result.finished_at - result.started_at
        self.on_event(JobFinished(replace(result)))
        st.finished += 1
        if result.blocks_run and self.fail_fast:
            self._stop(JobStatus.SKIPPED)
        for child in self.plan.dependents.get(iid, ()):
            st.remaining[child] -= 1
            if st.remaining[child] == 0 and not st.results[child].status.is_final:
                self._on_ready(child)
        if st.finished == len(st.results) and self._done is not None and not self._done.done():
            self._done.set_result(None)
