"""The run session: a run's row in the history from its start to its final status.

``start`` records the run and its pending jobs, takes the run lock (``liveness``: a process that dies
leaves an abandoned run the next command closes) and makes the log directory; ``finish`` records the
final status once every job row is written. Nothing here runs a job.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from buildyard.engine.factory import log_name, run_log_dir
from buildyard.engine.joblog import disk_full_message, is_disk_full
from buildyard.engine.liveness import Recovered, RunLock, recover_abandoned
from buildyard.engine.masking import Masker
from buildyard.engine.options import RunObserver, RunOptions, warner
from buildyard.engine.recording import history_where
from buildyard.errors import DiskFullError
from buildyard.model import RunStatus
from buildyard.plan.build import Plan, TriggerContext
from buildyard.spec.models import Pipeline
from buildyard.store.history import History, JobRecord, RunRecord


@dataclass
class RunSession:
    """One recorded run: its row, its lock, where its logs go."""

    history: History
    run: RunRecord
    lock: RunLock
    log_dir: Path
    created: float

    @classmethod
    def start(
        cls,
        history: History,
        *,
        options: RunOptions,
        home: Path,
        pipeline: Pipeline,
        plan: Plan,
        trigger: TriggerContext,
        masker: Masker,
        observer: RunObserver | None,
    ) -> RunSession:
        """Close this home's abandoned runs, then record a new running run and its pending jobs."""
        _report_recovered(recover_abandoned(history, home), observer)
        run_id = uuid.uuid4().hex
        lock = RunLock(home, run_id)  # held until the final status is recorded
        created = time.time()
        try:
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
            log_dir = run_log_dir(home, pipeline.name, run.number)
            log_dir.mkdir(parents=True, exist_ok=True)
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
        except BaseException:
            lock.abandon()  # the next command records the run (if it was created) as abandoned
            raise
        return cls(history, run, lock, log_dir, created)

    def finish(
        self, status: RunStatus, *, first_start: float | None, message: str, failure: BaseException | None
    ) -> None:
        """Record the final status and release the lock; ``failure``: a disk-full history write during
        the run (the run is then left to the next command to record, and ``DiskFullError`` raised)."""
        finished = time.time()
        if failure is None:
            try:
                self.history.update_run(
                    self.run.id,
                    status=str(status),
                    started_at=first_start,
                    finished_at=finished,
                    duration_s=finished - self.created,
                    queue_s=(first_start - self.created) if first_start else None,
                    message=message,
                )
            except Exception as exc:
                if not is_disk_full(exc):
                    raise
                failure = exc
        if failure is not None:  # the lock is abandoned: the next command records the run so
            raise DiskFullError(
                f"{disk_full_message(history_where(self.history))} (run #{self.run.number} is recorded as "
                "abandoned by the next buildyard command)"
            ) from None
        self.lock.release()

    def abandon(self) -> None:
        """Give up the lock without a final status (a no-op after ``finish``)."""
        self.lock.abandon()


def _report_recovered(recovered: list[Recovered], observer: RunObserver | None) -> None:
    warn = warner(observer)
    for item in recovered:
        plural = "es" if item.killed > 1 else ""
        left = f"; killed {item.killed} process{plural} it left behind" if item.killed else ""
        warn(
            f"run #{item.run.number} of {item.run.pipeline} was abandoned by its buildyard process: "
            f"recorded as cancelled{left}"
        )
