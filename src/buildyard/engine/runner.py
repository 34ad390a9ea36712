"""One run as a list of named steps: ``load → plan → start → execute → record → finish``.

``execute_run`` tells the story of a run; each chapter lives in its own module: ``loading`` (load,
trigger, plan), ``session`` (the run's row and lock), ``factory`` (job instance → ``JobRequest``),
``stack`` (the executor stack, declared once), ``recording`` (history writes). This module owns the
asyncio loop and the signal handlers (Ctrl-C / SIGTERM cancel the run cleanly). Nothing here prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import replace
from typing import Any

from buildyard.engine.analytics import analytics_step, declared_outputs, tree_digest
from buildyard.engine.approvals import Approvals
from buildyard.engine.factory import STRICT_BASE_ENV, RequestFactory, log_name, passed_env
from buildyard.engine.joblog import is_disk_full, is_disk_full_message, log_limit
from buildyard.engine.loading import load_cached, load_step, plan_step, trigger_step
from buildyard.engine.masking import Masker
from buildyard.engine.options import RunObserver, RunOptions, RunResult, home_dir, warner
from buildyard.engine.recording import FLUSH_INTERVAL, Recorder, open_checked_history, open_history
from buildyard.engine.request import Executor
from buildyard.engine.scheduler import (
    ApprovalCheck,
    JobFinished,
    JobResult,
    JobWaiting,
    Lease,
    RunEvent,
    Scheduler,
)
from buildyard.engine.session import RunSession
from buildyard.engine.stack import CacheStack, StackContext, build_stack, open_cache_stack
from buildyard.engine.watchdog import kill_marked, last_pid
from buildyard.errors import DiskFullError
from buildyard.gitinfo import read_git
from buildyard.model import JobStatus, RunStatus
from buildyard.plan.build import JobInstance, Plan, TriggerContext, static_context
from buildyard.spec.models import Pipeline
from buildyard.store.history import History

__all__ = [
    "FLUSH_INTERVAL",
    "STRICT_BASE_ENV",
    "CacheStack",
    "RunObserver",
    "RunOptions",
    "RunResult",
    "execute_run",
    "home_dir",
    "load_cached",
    "log_name",
    "open_cache_stack",
    "open_checked_history",
    "open_history",
    "passed_env",
]

#: Final statuses of jobs that started no process (nothing of theirs can be left to kill).
_NO_PROCESS = frozenset({JobStatus.CACHED, JobStatus.SKIPPED, JobStatus.MANUAL})


def execute_run(
    options: RunOptions,
    observer: RunObserver | None = None,
    executor: Executor | None = None,
    lease: Lease | None = None,
) -> RunResult:
    """Run the pipeline of ``options`` to completion and record it.

    ``executor``: the backend to run jobs on (kept open); default a new one of ``options.executor``.
    ``lease``: what the run gives back while it only waits for approvals (a server's runner).
    """
    pipeline = load_step(options)
    if options.log_limit is None:  # an invalid $BUILDYARD_LOG_LIMIT is reported before anything runs
        options = replace(options, log_limit=log_limit(project=options.project_dir))
    trigger, secrets = trigger_step(options, pipeline, read_git(options.project_dir))
    masker = Masker(secrets.values())
    history = None if options.dry_run else open_history(options)
    session: RunSession | None = None
    recorder: Recorder | None = None
    try:
        plan = plan_step(options, pipeline, trigger, history)
        if history is None:
            return RunResult(plan=plan, pipeline=pipeline, status=RunStatus.SUCCESS, masker=masker)
        home = home_dir(options)
        session = RunSession.start(
            history,
            options=options,
            home=home,
            pipeline=pipeline,
            plan=plan,
            trigger=trigger,
            masker=masker,
            observer=observer,
        )
        run = session.run
        make_request = RequestFactory(
            options=options,
            pipeline=pipeline,
            plan=plan,
            trigger=trigger,
            run=run,
            secrets=secrets,
            log_dir=session.log_dir,
        )
        tree = tree_digest(options.project_dir, declared_outputs(pipeline), home=home)
        recorder = Recorder(history, run, masker, tree)
        approvals = Approvals(history, run, make_request.approvals, poll=options.approval_poll)
        approvals.pre_approve(plan, options.approver or os.environ.get("USER") or "cli")
        if observer is not None:
            observer.started(run, plan)

        events = _RunEvents(recorder, make_request, observer)
        context = _stack_context(options, pipeline, plan, trigger, history, session, events, observer)
        stack = build_stack(context, backend=executor, name=options.executor)
        scheduler = events.scheduler = Scheduler(
            plan,
            stack.executor,
            make_request,
            slots=options.slots or os.cpu_count() or 1,
            fail_fast=options.fail_fast,
            on_event=events,
            sink=observer.output if observer is not None else None,
            context=static_context(pipeline, trigger),
            approver=approvals.wait,
            approval_needless=_needless(stack.executor, make_request),
            lease=lease,
        )
        first_pid = last_pid()
        try:
            asyncio.run(_drive(scheduler, recorder))
        finally:
            stack.close()
        if any(r.attempts and r.status not in _NO_PROCESS for r in scheduler.results.values()):
            kill_marked(f"BUILDYARD_RUN_ID={run.id}", since=first_pid)  # the jobs' escaped daemons
        failure = recorder.close(scheduler)  # waits for every write; a disk-full one stopped the jobs
        session.finish(
            scheduler.status(),
            first_start=recorder.first_start,
            message=events.problems[0] if events.problems else "",
            failure=failure,
        )
        full = [p for p in events.problems if is_disk_full_message(p)]
        if full:  # recorded as the jobs' and the run's reason; the CLI says it in one line
            raise DiskFullError(full[0])
        final = history.get_run(run.id)
        if scheduler.internal_errors:
            raise scheduler.internal_errors[0]
        triage, flaky = analytics_step(history, final, session.created)
        return RunResult(
            plan=plan,
            pipeline=pipeline,
            status=scheduler.status(),
            run=final,
            jobs=list(scheduler.results.values()),
            masker=masker,
            home=home,
            triage=triage,
            flaky=flaky,
        )
    finally:
        if recorder is not None:
            recorder.writer.drain()  # a no-op after close; after an error, stops the writer thread
        if session is not None:
            session.abandon()  # a no-op after finish; after an error the next run closes this one
        if history is not None:
            history.close()


class _RunEvents:
    """What the run does as jobs start and finish: bookkeeping for the requests still to make, rows
    for the history (through the recorder), and the observer's view."""

    def __init__(
        self, recorder: Recorder, make_request: RequestFactory, observer: RunObserver | None
    ) -> None:
        self.recorder = recorder
        self.make_request = make_request
        self.observer = observer
        self.warn = warner(observer)
        self.problems: list[str] = []  # logs that could not be written (disk full…), first first
        self.failed: set[str] = set()  # jobs that failed the run (the gates node reports them)
        self.scheduler: Scheduler | None = None

    def __call__(self, event: RunEvent) -> None:
        """Handle one scheduler event (on the loop thread: posts history writes, never waits)."""
        if isinstance(event, JobWaiting):
            self.recorder.save_now(event.result)  # `approve` checks it at once
        if isinstance(event, JobFinished):
            self._finished(event.result)
        self.recorder.event(event)
        if isinstance(event, JobFinished) and event.result.gate_results and self.scheduler is not None:
            self.recorder.flush(self.scheduler)  # a deployment promoting this run's artifact reads them
        if self.observer is not None:
            self.observer.event(event)

    def _finished(self, result: JobResult) -> None:
        self.make_request.statuses[result.id] = str(result.status)
        if result.log_problem:
            self.problems.append(result.log_problem)
        if result.log_cut:
            self.warn(
                f"{result.id}: its log passed the limit of {self.make_request.log_limit} bytes: "
                f"{result.log_cut} bytes cut from the middle of {result.log_path}"
            )
        if result.published:
            self.make_request.published[result.id] = result.published
        if result.cache_key:
            self.make_request.keys[result.id] = result.cache_key
        if result.blocks_run:
            self.failed.add(result.id)


def _stack_context(
    options: RunOptions,
    pipeline: Pipeline,
    plan: Plan,
    trigger: TriggerContext,
    history: History,
    session: RunSession,
    events: _RunEvents,
    observer: RunObserver | None,
) -> StackContext:
    """What the run's executor stack is made from (its wrappers' services and settings)."""

    def baseline(gate: str, branch: str) -> dict[str, Any] | None:
        return history.latest_gate_data(
            pipeline=pipeline.name, branch=branch or trigger.branch, gate=gate, before=session.created
        )

    return StackContext(
        plan=plan,
        project=options.project_dir,
        history=history,
        run_started=session.created,
        baselines=baseline,
        failed=events.failed,
        warn=warner(observer),
        info=getattr(observer, "info", None) or warner(observer),
        cache=open_cache_stack(options, home_dir(options), observer) if options.cache else None,
        strict=options.strict,
        home=home_dir(options),
        written=events.recorder.writer.written,
    )


async def _drive(scheduler: Scheduler, recorder: Recorder) -> None:
    """Run the scheduler with Ctrl-C/SIGTERM cancelling it; job rows are posted to the history writer
    every ``FLUSH_INTERVAL``, and a full disk under the history stops the jobs."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, scheduler.cancel)

    def write_failed(exc: BaseException) -> None:  # on the writer thread
        if is_disk_full(exc):  # nothing more can be recorded: stop the jobs, report it at the end
            loop.call_soon_threadsafe(scheduler.cancel)

    recorder.writer.on_failure = write_failed

    async def flusher() -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            recorder.flush(scheduler)

    task = asyncio.create_task(flusher())
    try:
        await scheduler.run()
    finally:
        recorder.writer.on_failure = None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _needless(outermost: Executor, make_request: RequestFactory) -> ApprovalCheck | None:
    """The check that lets a deployment whose version is already live start without its approval."""
    unchanged = getattr(outermost, "unchanged", None)  # the deploying wrapper, when the plan deploys
    if unchanged is None:
        return None

    async def needless(inst: JobInstance) -> str | None:
        spec = make_request.deploy_request(inst)
        note: str | None = await unchanged(spec) if spec is not None else None
        if note is not None:
            make_request.unapproved.add(inst.id)
        return note

    return needless
