"""``buildyard approve``, ``reject`` and ``deploy history|rollback``: deployments of a project."""

from __future__ import annotations

import datetime as dt
import sys
from typing import TYPE_CHECKING

import click

from buildyard.cli._common import db_option, json_option, print_json, project_dir
from buildyard.cli._remote import project_option, server_option
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


def _decide(
    ctx: click.Context,
    run: str,
    job: str,
    decision: str,
    comment: str,
    db: str | None,
    server_url: str | None = None,
    project: str | None = None,
) -> None:
    if server_url:
        from buildyard.cli.client import remote_decide  # noqa: PLC0415

        remote_decide(server_url, project, run, job, decision, comment)
        return
    from buildyard.engine.deployctl import decide  # noqa: PLC0415

    store = _open(ctx, db)
    try:
        done = decide(store, run, job, decision, _actor(), comment)
    finally:
        store.close()
    word = "approved" if decision == "approve" else "rejected"
    print(f"{word} {done.job.id} of run #{done.run.number} (as {done.actor})")


@click.command()
@click.argument("run")
@click.argument("job")
@click.option("--comment", default="", help="Why (recorded with the approval).")
@db_option
@server_option
@project_option
@click.pass_context
def approve(
    ctx: click.Context,
    run: str,
    job: str,
    comment: str,
    db: str | None,
    server_url: str | None,
    project_name: str | None,
) -> None:
    """Approve the deployment JOB of RUN (a run number or id) that waits for approval."""
    _decide(ctx, run, job, "approve", comment, db, server_url, project_name)


@click.command()
@click.argument("run")
@click.argument("job")
@click.option("--comment", default="", help="Why (recorded, shown as the skip reason).")
@db_option
@server_option
@project_option
@click.pass_context
def reject(
    ctx: click.Context,
    run: str,
    job: str,
    comment: str,
    db: str | None,
    server_url: str | None,
    project_name: str | None,
) -> None:
    """Reject the deployment JOB of RUN: it is skipped, with the reason recorded."""
    _decide(ctx, run, job, "reject", comment, db, server_url, project_name)


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
    from buildyard.engine.deployctl import finish_rollback, plan_rollback  # noqa: PLC0415
    from buildyard.engine.runner import RunOptions, execute_run  # noqa: PLC0415
    from buildyard.model import Event  # noqa: PLC0415

    store = _open(ctx, db)
    try:
        plan = plan_rollback(store, environment, version)
    finally:
        store.close()
    options = RunOptions(
        project_dir=project_dir(ctx),
        select=(plan.job_id,),
        alone=True,
        event=Event.MANUAL,
        trigger="rollback",
        manual=frozenset({plan.job_id}),
        pins={plan.job_id: plan.pin},
        db_url=db,
    )
    from buildyard.cli.render import PlainRenderer  # noqa: PLC0415

    print(f"rolling back {environment} to {plan.pin} (job {plan.job_id}; live: {plan.live_version or '-'})")
    result = execute_run(options, PlainRenderer(sys.stdout))
    run_rec = result.run
    assert run_rec is not None  # noqa: S101 - a non-dry run is always recorded
    store = _open(ctx, db)
    try:
        finish_rollback(store, plan, succeeded=result.status == RunStatus.SUCCESS)
    finally:
        store.close()
    print(f"run #{run_rec.number} {result.status}; details: buildyard show {run_rec.number}")
    return result.status.exit_code
