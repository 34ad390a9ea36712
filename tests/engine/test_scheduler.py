"""The scheduler with a fake executor: no barriers, slots, priorities, retries, failure handling.

Every test runs on a virtual clock (``buildyard.testing.clock``): jobs "take" their scripted
durations and backoffs instantly, and times are asserted exactly, however loaded the machine is.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from buildyard.engine.request import JobRequest
from buildyard.engine.scheduler import JobFinished, JobRetrying, JobWaiting, RunEvent, Scheduler
from buildyard.model import JobStatus, RunStatus, SkipReason
from buildyard.plan.build import JobInstance, Skip, TriggerContext, build
from buildyard.spec.load import loads
from buildyard.testing.clock import START, VirtualClock, run_virtual
from buildyard.testing.executors import FakeExecutor


def request(inst: JobInstance, attempt: int) -> JobRequest:
    return JobRequest(run_id="r", job_id=inst.id, attempt=attempt, steps=(), env=(), cwd=".", log_path="")


def run(
    text: str,
    executor: FakeExecutor,
    *,
    slots: int = 4,
    fail_fast: bool = False,
    events: list[RunEvent] | None = None,
) -> Scheduler:
    plan = build(loads(text), TriggerContext())
    clock = VirtualClock()
    executor.clock = clock
    sched = Scheduler(
        plan,
        executor,
        request,
        slots=slots,
        fail_fast=fail_fast,
        on_event=(events.append if events is not None else None),
        clock=clock,
    )
    run_virtual(sched.run(), clock)
    return sched


def durations(table: dict[str, float], fail: dict[str, int] | None = None) -> FakeExecutor:
    def script(req: JobRequest) -> tuple[float, JobStatus, int | None]:
        code = (fail or {}).get(req.job_id, 0)
        return table.get(req.job_id, 0.0), JobStatus.FAILED if code else JobStatus.SUCCESS, code

    return FakeExecutor(script)


def starts(executor: FakeExecutor) -> dict[str, float]:
    t0 = min(c[2] for c in executor.calls)
    return {job: start - t0 for job, _a, start, _e in executor.calls}


def test_a_job_starts_when_its_own_needs_are_done_not_at_a_stage_barrier() -> None:
    text = """
stages: [one, two]
jobs:
  slow: {stage: one, script: x}
  fast: {stage: one, script: x}
  after_fast: {stage: two, needs: [fast], script: x}
  after_all: {stage: two, script: x}
"""
    ex = durations({"slow": 0.5, "fast": 0.05, "after_fast": 0.05})
    sched = run(text, ex)
    s = starts(ex)
    assert s["after_fast"] == pytest.approx(0.05)  # did not wait for "slow"
    assert s["after_all"] == pytest.approx(0.5)  # stage semantics: waits for every job of stage one
    assert sched.status() == RunStatus.SUCCESS


def test_slots_bound_parallelism_and_cpus_weigh() -> None:
    jobs = "\n".join(f"  j{i}: {{script: x}}" for i in range(6))
    ex = durations(dict.fromkeys([f"j{i}" for i in range(6)], 0.05))
    run(f"jobs:\n{jobs}\n", ex, slots=2)
    assert ex.max_running == 2
    ex = durations({"big": 0.1, "a": 0.1, "b": 0.1})
    run("jobs:\n  big: {resources: {cpus: 2}, script: x}\n  a: {script: x}\n  b: {script: x}\n", ex, slots=2)
    s = starts(ex)
    assert s["big"] == 0.0 and s["a"] == s["b"] == pytest.approx(0.1)  # big took both slots


def test_ready_jobs_run_longest_critical_path_first() -> None:
    text = (
        "jobs:\n  lone: {script: x}\n  head: {script: x}\n  mid: {needs: [head], script: x}\n"
        "  tail: {needs: [mid], script: x}\n"
    )
    ex = durations({})
    run(text, ex, slots=1)
    assert ex.calls[0][0] == "head"


def test_failure_skips_dependents_and_independent_branches_continue() -> None:
    text = (
        "jobs:\n  a: {script: x}\n  b: {needs: [a], script: x}\n  c: {needs: [b], script: x}\n"
        "  other: {script: x}\n  after_other: {needs: [other], script: x}\n"
    )
    sched = run(text, durations({"other": 0.05}, fail={"a": 2}))
    r = sched.results
    assert r["a"].status == JobStatus.FAILED and r["a"].exit_code == 2
    assert r["b"].status == JobStatus.SKIPPED and r["b"].skip_reason == SkipReason.DEPENDENCY_FAILED
    assert r["b"].message == "dependency 'a' failed"
    assert r["c"].status == JobStatus.SKIPPED and r["c"].skip_reason == SkipReason.DEPENDENCY_SKIPPED
    assert r["after_other"].status == JobStatus.SUCCESS
    assert sched.status() == RunStatus.FAILED


def test_allow_failure_does_not_fail_the_run_or_block_dependents() -> None:
    sched = run(
        "jobs:\n  a: {allow_failure: true, script: x}\n  b: {needs: [a], script: x}\n",
        durations({}, fail={"a": 1}),
    )
    assert sched.results["a"].status == JobStatus.FAILED and sched.results["b"].status == JobStatus.SUCCESS
    assert sched.status() == RunStatus.SUCCESS


def test_when_on_failure_always_and_runtime_conditions() -> None:
    text = """
jobs:
  a: {script: x}
  cleanup: {needs: [a], when: always, script: x}
  alert: {needs: [a], when: on_failure, script: x}
  on_ok: {needs: [a], script: x}
  cond: {needs: [a], when: always, if: "needs.a.status == 'failed'", script: x}
  cond_false: {needs: [a], when: always, if: "needs.a.status == 'success'", script: x}
"""
    r = run(text, durations({}, fail={"a": 1})).results
    assert r["cleanup"].status == JobStatus.SUCCESS and r["alert"].status == JobStatus.SUCCESS
    assert r["on_ok"].status == JobStatus.SKIPPED and r["cond"].status == JobStatus.SUCCESS
    assert r["cond_false"].skip_reason == SkipReason.CONDITION_FALSE
    r = run(text, durations({})).results
    assert r["alert"].status == JobStatus.SKIPPED and r["alert"].skip_reason == SkipReason.NOT_ON_FAILURE


def test_an_exit_in_skip_exit_codes_ends_the_job_skipped_without_retry() -> None:
    text = """
jobs:
  decide: {skip_exit_codes: [78], retry: 2, script: x}
  other: {skip_exit_codes: [78], script: x}
  after: {needs: [decide], script: x}
  report: {needs: [decide], when: always, if: "needs.decide.status == 'skipped'", script: x}
"""
    executor = durations({}, fail={"decide": 78, "other": 1})
    sched = run(text, executor)
    r = sched.results
    assert r["decide"].status == JobStatus.SKIPPED and r["decide"].attempts == 1
    assert r["decide"].skip_reason == SkipReason.CONDITION_FALSE and r["decide"].exit_code == 78
    assert r["after"].status == JobStatus.SKIPPED and r["after"].skip_reason == SkipReason.DEPENDENCY_SKIPPED
    assert r["report"].status == JobStatus.SUCCESS
    assert r["other"].status == JobStatus.FAILED  # another exit is a failure as before
    assert [job for job, *_ in executor.calls].count("decide") == 1


def test_a_job_made_ready_by_a_root_skipped_at_once_starts_once() -> None:
    """A root skipped by its condition makes an ``always`` dependent ready while the roots are listed;
    it was listed again as a root and started twice (its dependent then ended cancelled)."""
    text = """
jobs:
  gated: {if: "branch == 'main'", script: x}
  cleanup: {needs: [gated], when: always, script: x}
  after: {needs: [cleanup], script: x}
"""
    executor = durations({"cleanup": 1.0})
    sched = run(text, executor)
    assert [job for job, *_ in executor.calls] == ["cleanup", "after"]
    assert sched.results["gated"].status == JobStatus.SKIPPED
    assert sched.results["after"].status == JobStatus.SUCCESS


def test_retries_with_exponential_backoff() -> None:
    attempts: dict[str, int] = {}

    def script(req: JobRequest) -> tuple[float, JobStatus, int | None]:
        attempts[req.job_id] = req.attempt
        if req.job_id == "flaky" and req.attempt < 3:
            return 0.0, JobStatus.FAILED, 1
        if req.job_id == "wrong_code":
            return 0.0, JobStatus.FAILED, 2
        return 0.0, JobStatus.SUCCESS, 0

    ex = FakeExecutor(script)
    events: list[RunEvent] = []
    text = (
        "jobs:\n  flaky: {retry: {max: 3, backoff: 0.05}, script: x}\n"
        "  wrong_code: {retry: {max: 3, backoff: 0.01, when: [1]}, script: x}\n"
    )
    sched = run(text, ex, events=events)
    assert sched.results["flaky"].status == JobStatus.SUCCESS and sched.results["flaky"].attempts == 3
    assert sched.results["wrong_code"].attempts == 1  # exit 2 is not in retry.when
    delays = [e.delay for e in events if isinstance(e, JobRetrying)]
    assert delays == [0.05, 0.1]
    flaky = [c for c in ex.calls if c[0] == "flaky"]
    assert flaky[1][2] - flaky[0][3] == pytest.approx(0.05)  # waited the backoff, no more
    assert flaky[2][2] - flaky[1][3] == pytest.approx(0.1)  # doubled


def test_fail_fast_cancels_running_and_skips_pending() -> None:
    text = "jobs:\n  bad: {script: x}\n  long: {script: x}\n  later: {needs: [long], script: x}\n"
    sched = run(text, durations({"bad": 0.05, "long": 5}, fail={"bad": 1}), fail_fast=True)
    r = sched.results
    assert r["long"].status == JobStatus.CANCELLED
    assert r["later"].status == JobStatus.SKIPPED and r["later"].skip_reason == SkipReason.FAIL_FAST
    assert sched.status() == RunStatus.FAILED


def test_cancel_marks_everything_cancelled() -> None:
    plan = build(loads("jobs:\n  a: {script: x}\n  b: {needs: [a], script: x}\n"), TriggerContext())
    events: list[RunEvent] = []
    clock = VirtualClock()
    sched = Scheduler(plan, durations({"a": 5}), request, slots=2, on_event=events.append, clock=clock)

    async def main() -> None:
        task = asyncio.create_task(sched.run())
        await asyncio.sleep(0.05)
        sched.cancel()
        await asyncio.wait_for(task, 2)

    run_virtual(main(), clock)
    assert clock() - START == pytest.approx(0.05)  # cancelled at once: nothing waited for "a" to end
    assert sched.results["a"].duration_s == pytest.approx(0.05)
    assert {r.status for r in sched.results.values()} == {JobStatus.CANCELLED}
    assert sched.status() == RunStatus.CANCELLED
    assert len([e for e in events if isinstance(e, JobFinished)]) == 2


def test_manual_job_blocks_its_dependents() -> None:
    r = run(
        "jobs:\n  gate: {when: manual, script: x}\n  ship: {needs: [gate], script: x}\n", durations({})
    ).results
    assert r["gate"].status == JobStatus.MANUAL
    assert r["ship"].status == JobStatus.SKIPPED and "was not run (manual)" in r["ship"].message


APPROVAL = """
jobs:
  deploy: {script: x, environment: {name: prod, artifact: a, approval: required}}
  other: {script: x}
"""


def test_a_deployment_waits_for_approval_without_a_slot_and_can_be_rejected_or_cancelled() -> None:
    plan = build(loads(APPROVAL), TriggerContext())
    events: list[RunEvent] = []
    gates: list[asyncio.Event] = []
    answer: list[Skip | None] = [None]

    async def approver(_inst: JobInstance) -> Skip | None:
        await gates[-1].wait()
        return answer[0]

    async def drive(sched: Scheduler, *, cancel: bool = False) -> None:
        gates.append(asyncio.Event())
        task = asyncio.create_task(sched.run())
        await asyncio.sleep(0.3)
        assert sched.results["deploy"].status == JobStatus.WAITING, sched.results["deploy"].message
        assert sched.results["other"].status == JobStatus.SUCCESS  # ran in the only slot meanwhile
        if cancel:
            sched.cancel()
        else:
            gates[-1].set()
        await task

    sched = Scheduler(
        plan, durations({"other": 0.1}), request, slots=1, on_event=events.append, approver=approver
    )
    run_virtual(drive(sched))
    assert sched.results["deploy"].status == JobStatus.SUCCESS
    assert [e.result.id for e in events if isinstance(e, JobWaiting)] == ["deploy"]

    answer[0] = Skip(SkipReason.REJECTED, "rejected by bob")
    sched = Scheduler(plan, durations({}), request, slots=1, approver=approver)
    run_virtual(drive(sched))
    assert (sched.results["deploy"].status, sched.results["deploy"].message) == (
        JobStatus.SKIPPED,
        "rejected by bob",
    )

    sched = Scheduler(plan, durations({}), request, slots=1, approver=approver)
    run_virtual(drive(sched, cancel=True))
    assert sched.results["deploy"].status == JobStatus.CANCELLED and sched.status() == RunStatus.CANCELLED
    unattended = run(APPROVAL, durations({}))  # no approver: it never runs unapproved
    assert unattended.results["deploy"].skip_reason == SkipReason.REJECTED


def test_long_backoffs_cost_no_real_time() -> None:
    """A minute of exponential backoff (capped by max_backoff) runs in virtual time, exactly."""
    ex = durations({"flaky": 1.0}, fail={"flaky": 1})
    events: list[RunEvent] = []
    text = "jobs:\n  flaky: {retry: {max: 4, backoff: 10s, max_backoff: 25s}, script: x}\n"
    sched = run(text, ex, events=events)
    assert sched.results["flaky"].attempts == 5
    assert [e.delay for e in events if isinstance(e, JobRetrying)] == [10, 20, 25, 25]
    ends = [(start, end) for _j, _a, start, end in ex.calls]
    assert [b[0] - a[1] for a, b in itertools.pairwise(ends)] == pytest.approx([10, 20, 25, 25])
    result = sched.results["flaky"]
    assert result.duration_s == pytest.approx(5 * 1.0 + 80)  # the recorded times are the clock's


def test_a_bug_in_an_executor_fails_the_job_and_the_run_still_ends() -> None:
    """A job whose executor raises (a bug, e.g. in a cache restore) fails; jobs it makes ready start."""
    text = """
jobs:
  broken: {script: x}
  other: {script: x}
  after: {needs: [broken], when: always, script: x}
  then: {needs: [after], script: x}
"""

    def script(req: JobRequest) -> tuple[float, JobStatus, int | None]:
        if req.job_id == "broken":
            raise RuntimeError("restore exploded")
        return 0.0, JobStatus.SUCCESS, 0

    sched = Scheduler(build(loads(text), TriggerContext()), FakeExecutor(script), request, slots=1)
    asyncio.run(asyncio.wait_for(sched.run(), timeout=10))  # hung forever before: nothing dispatched 'after'
    results = sched.results
    assert results["broken"].status == JobStatus.FAILED
    assert "buildyard internal error: RuntimeError('restore exploded')" in results["broken"].message
    assert results["after"].status == JobStatus.SUCCESS and results["then"].status == JobStatus.SUCCESS
    assert [type(e) for e in sched.internal_errors] == [RuntimeError]


class RecordingLease:
    """A lease handed back and forth on the virtual clock (acquired again after ``delay`` seconds)."""

    def __init__(self, clock: VirtualClock, delay: float) -> None:
        self.clock = clock
        self.delay = delay
        self.held = True
        self.log: list[tuple[str, float]] = []

    def release(self) -> None:
        assert self.held
        self.held = False
        self.log.append(("release", self.clock()))

    async def acquire(self) -> None:
        assert not self.held
        self.log.append(("ask", self.clock()))
        await asyncio.sleep(self.delay)
        self.held = True
        self.log.append(("acquire", self.clock()))


def test_a_run_waiting_only_for_approvals_gives_its_lease_back_and_runs_no_job_without_it() -> None:
    text = APPROVAL + "  long: {script: x}\n  after: {needs: [deploy], script: x}\n"
    plan = build(loads(text), TriggerContext())
    clock = VirtualClock()
    lease = RecordingLease(clock, delay=2.0)

    async def approver(_inst: JobInstance) -> Skip | None:
        await asyncio.sleep(1.0)  # approved at START + 1, while `long` still runs
        return None

    def script(req: JobRequest) -> tuple[float, JobStatus, int | None]:
        assert lease.held, f"{req.job_id} started without the lease"
        return {"long": 3.0, "other": 0.5}.get(req.job_id, 1.0), JobStatus.SUCCESS, 0

    ex = FakeExecutor(script, clock=clock)
    sched = Scheduler(plan, ex, request, slots=2, approver=approver, clock=clock, lease=lease)
    run_virtual(sched.run(), clock)
    assert {r.status for r in sched.results.values()} == {JobStatus.SUCCESS}
    # `long` ran meanwhile: the lease stayed held; approved while it ran, deploy started at once
    assert lease.log == []
    assert starts(ex)["deploy"] == pytest.approx(1.0)

    text = APPROVAL + "  after: {needs: [deploy], script: x}\n"
    plan = build(loads(text), TriggerContext())
    clock = VirtualClock()
    lease = RecordingLease(clock, delay=2.0)
    ex = FakeExecutor(script, clock=clock)
    sched = Scheduler(plan, ex, request, slots=2, approver=approver, clock=clock, lease=lease)
    run_virtual(sched.run(), clock)
    # only the approval awaited after `other` (0.5 s): released; approved at 1 s, acquired at 3 s
    assert lease.log == [("release", START + 0.5), ("ask", START + 1.0), ("acquire", START + 3.0)]
    assert sched.results["deploy"].started_at == START + 3.0
    assert sched.results["after"].started_at == START + 4.0


def test_a_rejected_deployment_lets_its_when_always_dependents_run() -> None:
    text = APPROVAL + "  after: {needs: [deploy], when: always, script: x}\n"
    plan = build(loads(text), TriggerContext())
    clock = VirtualClock()
    lease = RecordingLease(clock, delay=1.0)

    async def approver(_inst: JobInstance) -> Skip | None:
        await asyncio.sleep(1.0)
        return Skip(SkipReason.REJECTED, "rejected by bob")

    ex = durations({})
    ex.clock = clock
    sched = Scheduler(plan, ex, request, slots=1, approver=approver, clock=clock, lease=lease)
    run_virtual(asyncio.wait_for(sched.run(), 10), clock)  # hung before: nothing dispatched `after`
    assert sched.results["deploy"].status == JobStatus.SKIPPED
    assert sched.results["after"].status == JobStatus.SUCCESS
    assert [what for what, _ in lease.log] == ["release", "ask", "acquire"]
