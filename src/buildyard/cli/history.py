"""``buildyard history``, ``show`` and ``logs``: read the run history."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path

import click

from buildyard.cli._common import db_option, json_option, print_json, project_dir
from buildyard.cli._remote import project_option, server_option
from buildyard.engine.joblog import TextDecoder, copy_text
from buildyard.errors import NotFoundError
from buildyard.store.history import History, JobRecord


def _open(ctx: click.Context, db: str | None) -> History:
    from buildyard.engine.runner import RunOptions, open_checked_history  # noqa: PLC0415

    return open_checked_history(RunOptions(project_dir=project_dir(ctx), db_url=db))


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _dur(seconds: float | None) -> str:
    from buildyard.spec.durations import format_duration  # noqa: PLC0415

    return format_duration(seconds) if seconds is not None else "-"


@click.command()
@click.option(
    "-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many runs."
)
@click.option("--pipeline", help="Only this pipeline.")
@json_option
@db_option
@server_option
@project_option
@click.pass_context
def history(
    ctx: click.Context,
    limit: int,
    pipeline: str | None,
    as_json: bool,
    db: str | None,
    server_url: str | None,
    project_name: str | None,
) -> None:
    """List recent runs, newest first."""
    if server_url:
        from buildyard.cli.client import remote_history  # noqa: PLC0415

        remote_history(server_url, project_name, limit, as_json)
        return
    store = _open(ctx, db)
    try:
        runs = store.list_runs(pipeline=pipeline, limit=limit)
    finally:
        store.close()
    if as_json:
        from buildyard.views import RunView  # noqa: PLC0415

        print_json([RunView.summary(r).to_json() for r in runs])
        return
    if not runs:
        print("no runs recorded yet (start one with 'buildyard run')")
        return
    print(
        f"{'#':>5}  {'status':<9} {'pipeline':<16} {'event':<12} {'branch':<16} {'started':<19} {'took':>8}"
    )
    for r in runs:
        where = (r.branch or r.tag)[:16]
        print(
            f"{r.number:>5}  {r.status:<9} {r.pipeline[:16]:<16} {r.event:<12} {where:<16} "
            f"{_when(r.created_at):<19} {_dur(r.duration_s):>8}"
        )


@click.command()
@click.argument("run", required=False)
@json_option
@db_option
@server_option
@project_option
@click.pass_context
def show(
    ctx: click.Context,
    run: str | None,
    as_json: bool,
    db: str | None,
    server_url: str | None,
    project_name: str | None,
) -> None:
    """Show one run: its jobs, statuses, timings and resources.

    RUN is a run number (``N``, or ``PIPELINE#N`` when several pipelines share the history), a run
    id prefix, or ``last`` (the default)."""
    if server_url:
        from buildyard.cli.client import remote_show  # noqa: PLC0415

        remote_show(server_url, project_name, run, as_json)
        return
    from buildyard.views import load_run  # noqa: PLC0415

    store = _open(ctx, db)
    try:
        view = load_run(store, run, log_exists=os.path.exists)
    finally:
        store.close()
    if as_json:
        print_json(view.to_json())
        return
    record, jobs = view.record, view.jobs or ()
    from buildyard.termtext import safe_text  # noqa: PLC0415

    def _line(text: str) -> None:  # names, messages and gate reasons come from files and job output
        print(safe_text(text))

    _line(
        f"run #{record.number} {record.status}  pipeline={record.pipeline} event={record.event} "
        f"branch={record.branch or '-'} tag={record.tag or '-'} sha={record.sha[:12] or '-'}"
    )
    _line(
        f"id {record.id}  started {_when(record.created_at)}  took {_dur(record.duration_s)}  "
        f"queued {_dur(record.queue_s)}"
    )
    _line(f"{'job':<32} {'status':<10} {'try':>3} {'exit':>4} {'took':>8} {'cpu':>7} {'rss':>8}  note")
    for j in (job.record for job in jobs):
        rss = f"{j.peak_rss / 1e6:.0f}MB" if j.peak_rss else "-"
        cpu = f"{j.cpu_seconds:.2f}s" if j.cpu_seconds is not None else "-"
        code = "-" if j.exit_code is None else str(j.exit_code)
        note = j.message or (j.skip_reason or "")
        _line(
            f"{j.id[:32]:<32} {j.status:<10} {j.attempts:>3} {code:>4} {_dur(j.duration_s):>8} {cpu:>7} "
            f"{rss:>8}  {note}"
        )
    for g in sorted((g for job in jobs for g in job.gates), key=lambda g: g.job_id):
        _line(f"gate {g.status:<7} {g.job_id}: {g.gate}: {g.reason}")
    for d in sorted((d for job in jobs for d in job.deployments), key=lambda d: d.id):
        what = "rollback" if d.rollback_of else "deploy"
        by = f" (approved by {d.approved_by})" if d.approved_by else ""
        _line(f"{what} {d.status:<11} {d.job_id} → {d.environment}: {d.what}{by}")


@click.command()
@click.argument("run", required=False)
@click.argument("job", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing while the job runs.")
@click.option(
    "--raw", is_flag=True, help="On a terminal too, print the log as written (all escape sequences)."
)
@json_option
@db_option
@server_option
@project_option
@click.pass_context
def logs(
    ctx: click.Context,
    run: str | None,
    job: str | None,
    follow: bool,
    raw: bool,
    as_json: bool,
    db: str | None,
    server_url: str | None,
    project_name: str | None,
) -> None:
    """Print the (masked) log of a job, or of every job of a run.

    On a terminal, escape sequences other than colours are dropped (a job's output must not drive
    the reader's terminal); piped or with ``--raw``, the log is printed as written."""
    from buildyard.termtext import OutputFilter, safe_text  # noqa: PLC0415

    raw = raw or not sys.stdout.isatty()
    if server_url:
        from buildyard.cli.client import remote_logs  # noqa: PLC0415

        remote_logs(server_url, project_name, run, job, follow=follow, raw=raw)
        return
    store = _open(ctx, db)
    try:
        record = store.get_run(run)
        jobs = store.jobs(record.id)
        if job is not None:
            matching = [j for j in jobs if j.id == job] or [j for j in jobs if j.job == job]
            if not matching:
                import difflib  # noqa: PLC0415

                close = difflib.get_close_matches(job, [j.id for j in jobs], n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise NotFoundError(f"run #{record.number} has no job '{job}'{hint}")
            jobs = matching
        project = Path(record.project_dir) if record.project_dir else project_dir(ctx)
        if as_json:
            print_json([{"job": j.id, "status": j.status, "log": _log_of(j, project)} for j in jobs])
            return
        for j in jobs:
            if len(jobs) > 1:
                print(f"──── {safe_text(j.id)} ({j.status})")
            shown = OutputFilter(raw=raw)
            if follow and j.status not in ("cached", "skipped", "manual"):
                _follow(store, record.id, j.id, j.log_path, shown)
            elif j.log_path and Path(j.log_path).exists():
                copy_text(j.log_path, sys.stdout, decoder=shown)  # streamed: never whole in memory
                sys.stdout.flush()
            else:
                sys.stdout.write(_log_of(j, project))
                sys.stdout.flush()
    finally:
        store.close()


@click.command()
@click.argument("args", nargs=-1, required=True, metavar="[RUN] JOB")
@json_option
@db_option
@click.pass_context
def explain(ctx: click.Context, args: tuple[str, ...], as_json: bool, db: str | None) -> None:
    """Why a job ran instead of being restored from the cache (default run: the latest)."""
    if len(args) > 2:
        raise click.UsageError("expected [RUN] JOB")
    run, job = (args[0], args[1]) if len(args) == 2 else (None, args[0])
    store = _open(ctx, db)
    try:
        record = store.get_run(run)
        jobs = [j for j in store.jobs(record.id) if job in (j.id, j.job)]
    finally:
        store.close()
    if not jobs:
        raise NotFoundError(f"run #{record.number} has no job '{job}'")
    if as_json:
        from buildyard.views import JobView  # noqa: PLC0415

        print_json([JobView.from_record(j).cache_json() for j in jobs])
        return
    for j in jobs:
        if j.cache_status == "hit":
            print(f"{j.id}: cache hit (key {j.cache_key[:16]}), saved {_dur(j.saved_s)}")
        elif j.cache_status == "off":
            why = j.skip_reason or "caching disabled for this job or run"
            print(f"{j.id}: not cached ({j.status}; {why})")
        else:
            print(f"{j.id}: ran (cache miss, key {j.cache_key[:16]})")
            for reason in j.miss_reasons or ["no_entry"]:
                print(f"  - {reason}")


def _log_of(job: JobRecord, project: Path) -> str:
    """A job's log: its file, or for a cache hit the log stored with the cache entry it came from."""
    if job.log_path and Path(job.log_path).exists():
        return _read(job.log_path)
    if job.cache_status == "hit" and job.cache_key:
        from buildyard.cache import entry_log  # noqa: PLC0415 - only for cached jobs

        data = entry_log(project, job.cache_key)
        if data is None:
            return f"buildyard: the log of cache entry {job.cache_key[:16]} is no longer in the cache\n"
        return data.decode(errors="replace")
    return ""


def _read(path: str) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _follow(store: History, run_id: str, job_id: str, log_path: str, shown: TextDecoder) -> None:
    """Print the log as it grows until the job reaches a final status."""
    final = {"success", "failed", "timed_out", "skipped", "cached", "cancelled", "manual"}
    offset = 0
    path = log_path
    while True:
        current = next((j for j in store.jobs(run_id) if j.id == job_id), None)
        path = (current.log_path if current else "") or path
        copied = copy_text(path, sys.stdout, start=offset, decoder=shown, final=False) if path else 0
        if copied:
            offset += copied
            sys.stdout.flush()
        if current is None or current.status in final:
            if not copied:
                sys.stdout.write(shown.flush())
                return
            continue
        time.sleep(0.2)
