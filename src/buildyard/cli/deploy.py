"""``buildyard approve``, ``reject`` and ``deploy history|rollback``: deployments of a project."""

from __future__ import annotations

import datetime as dt
import sys
import time
from typing import TYPE_CHECKING

import click

from buildyard.cli._common import db_option, json_option, print_json, project_dir
from buildyard.errors import NotFoundError, UsageError
from buildyard.model import RunStatus

if TYPE_CHECKING:
    from buildyard.store.history import History


def _open(ctx: click.Context, db: str | None) -> History:
    from buildyard.engine.runner import RunOptions, open_history  # noqa: PLC0415

    return open_history(RunOptions(project_dir=project_dir(ctx), db_url=db))


def _actor() -> str:
    from buildyard.artifacts.audit import current_actor  # noqa: PLC0415 - lazy

    return current_actor()


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _decide(ctx: click.Context, run: str, job: str, decision: str, comment: str, db: str | None) -> None:
    from buildyard.store.deployments import ApprovalRecord  # noqa: PLC0415

    store = _open(ctx, db)
    try:
        record = store.get_run(run)
        jobs = store.jobs(record.id)
        matching = [j for j in jobs if j.id == job] or [j for j in jobs if j.job == job]
        if not matching:
            waiting = [j.id for j in jobs if j.status == "waiting"]
            hint = f" (waiting for approval: {', '.join(waiting)})" if waiting else ""
            raise NotFoundError(f"run #{record.number} has no job '{job}'{hint}")
        if len(matching) > 1:
            raise UsageError(f"'{job}' names several jobs of run #{record.number}; give one of them")
        target = matching[0]
        if target.status != "waiting" or record.status != "running":
            state = target.status if record.status == "running" else f"{target.status}, run {record.status}"
            raise UsageError(
                f"job '{target.id}' of run #{record.number} is not waiting for approval ({state})"
            )
        actor = _actor()
        store.decide(ApprovalRecord(record.id, target.id, decision, actor, comment, time.time()))
    finally:
        store.close()
    done = "approved" if decision == "approve" else "rejected"
    print(f"{done} {target.id} of run #{record.number} (as {actor})")


@click.command()
@click.argument("run")
@click.argument("job")
@click.option("--comment", default="", help="Why (recorded with the approval).")
@db_option
@click.pass_context
def approve(ctx: click.Context, run: str, job: str, comment: str, db: str | None) -> None:
    """Approve the deployment JOB of RUN (a run number or id) that waits for approval."""
    _decide(ctx, run, job, "approve", comment, db)


@click.command()
@click.argument("run")
@click.argument("job")
@click.option("--comment", default="", help="Why (recorded, shown as the skip reason).")
@db_option
@click.pass_context
def reject(ctx: click.Context, run: str, job: str, comment: str, db: str | None) -> None:
    """Reject the deployment JOB of RUN: it is skipped, with the reason recorded."""
    _decide(ctx, run, job, "reject", comment, db)


@click.group(name="deploy")
def app() -> None:
    """Deployments per environment: history and rollback."""


@app.command(name="history")
@click.argument("environment")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many.")
@json_option
@db_option
@click.pass_context
def history_cmd(ctx: click.Context, environment: str, limit: int, as_json: bool, db: str | None) -> None:
    """What was deployed to ENVIRONMENT, newest first: version, when, run, job, result, approver."""
    store = _open(ctx, db)
    try:
        rows = store.deployments(environment, limit=limit)
    finally:
        store.close()
    if as_json:
        from buildyard.views import DeploymentView  # noqa: PLC0415

        print_json([DeploymentView.from_record(r).to_json() for r in rows])
        return
    if not rows:
        print(f"no deployments to {environment} recorded yet")
        return
    print(f"{'version':<36} {'when':<19} {'run':>5}  {'job':<16} {'result':<11} approved by")
    for r in rows:
        note = f"  (rollback of #{r.rollback_of})" if r.rollback_of else ""
        print(
            f"{r.what:<36} {_when(r.started_at):<19} {r.run_number or 0:>5}  "
            f"{r.job_id[:16]:<16} {r.status:<11} {r.approved_by or '-'}{note}"
        )


@app.command()
@click.argument("environment")
@click.option("--to", "version", help="Version to go back to (default: the previous good one).")
@db_option
@click.pass_context
def rollback(ctx: click.Context, environment: str, version: str | None, db: str | None) -> int:
    """Redeploy ENVIRONMENT's previous good version through its deployment job, as a new run."""
    from buildyard.engine.runner import RunOptions, execute_run  # noqa: PLC0415
    from buildyard.model import Event  # noqa: PLC0415

    store = _open(ctx, db)
    try:
        recent = store.deployments(environment, limit=1)
        if not recent:
            raise NotFoundError(
                f"no deployments to {environment} recorded yet (see 'buildyard deploy history')"
            )
        last = recent[0]
        if not last.artifact:
            raise UsageError(
                f"the last deployment to {environment} was a script deployment of commit "
                f"{last.version[:12]}: check out the commit to go back to and run "
                f"'buildyard run {last.job_id}'"
            )
        live = store.last_good_version(environment, artifact=last.artifact)
        current = live.version if live is not None else None
        if version is None:
            # after a failed deployment the last good version is what to restore; after a good one,
            # the one before it (versions already rolled back from are not "good" any more)
            exclude = current if last.status == "success" else None
            target = store.last_good_version(environment, artifact=last.artifact, exclude=exclude)
            if target is None:
                what = f"other than the live {current}" if current else "to go back to"
                raise NotFoundError(
                    f"{environment} has no successful deployment of {last.artifact} {what} "
                    "(give --to VERSION)"
                )
            version = target.version
    finally:
        store.close()
    options = RunOptions(
        project_dir=project_dir(ctx),
        select=(last.job_id,),
        alone=True,
        event=Event.MANUAL,
        trigger="rollback",
        manual=frozenset({last.job_id}),
        pins={last.job_id: f"{last.artifact}@{version}"},
        db_url=db,
    )
    from buildyard.cli.render import PlainRenderer  # noqa: PLC0415

    print(
        f"rolling back {environment} to {last.artifact}@{version} (job {last.job_id}; live: {current or '-'})"
    )
    result = execute_run(options, PlainRenderer(sys.stdout))
    run_rec = result.run
    assert run_rec is not None  # noqa: S101 - a non-dry run is always recorded
    if result.status == RunStatus.SUCCESS and live is not None and live.version != version:
        store = _open(ctx, db)
        try:
            store.mark_rolled_back(live.id)  # the next rollback goes further back, not forth
        finally:
            store.close()
    print(f"run #{run_rec.number} {result.status}; details: buildyard show {run_rec.number}")
    return result.status.exit_code
