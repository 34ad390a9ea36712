"""``buildyard run``, ``validate`` and ``schema``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from buildyard.cli._common import db_option, json_option, print_json, project_dir, setting_default
from buildyard.errors import UsageError
from buildyard.model import Event


def _parse_vars(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--var expects KEY=VALUE, got '{item}'")
        out[key] = value
    from buildyard.spec.models import MAX_VARIABLES_BYTES, variables_size  # noqa: PLC0415

    if variables_size(out) > MAX_VARIABLES_BYTES:
        raise UsageError(
            f"--var values take more than {MAX_VARIABLES_BYTES // 1024} KiB, the limit stored with every run "
            "(pass large values in files)"
        )
    return out


@click.command()
@click.argument("jobs", nargs=-1)
@click.option("-j", "--jobs", "parallel", type=click.IntRange(min=1), help="Parallel slots (default: CPUs).")
@click.option(
    "--event",
    type=click.Choice([e.value for e in Event]),
    default=Event.PUSH.value,
    show_default=True,
    help="Trigger event.",
)
@click.option(
    "--changed",
    multiple=True,
    metavar="PATH",
    help="A path the event changed (repeat): the run starts only if the pipeline's 'on:' selects the event.",
)
@click.option("--branch", help="Branch (default: from git).")
@click.option("--tag", help="Tag (default: from git).")
@click.option("--var", "var", multiple=True, metavar="KEY=VALUE", help="Set a pipeline variable.")
@click.option(
    "--manual", multiple=True, metavar="JOB", help="Run this manual job; approve this deployment in advance."
)
@click.option("--fail-fast", is_flag=True, help="Stop everything at the first failure.")
@click.option("--dry-run", is_flag=True, help="Show the plan without running it.")
@json_option
@click.option("--stream", is_flag=True, help="Print all job output, prefixed by the job name.")
@click.option(
    "--raw",
    is_flag=True,
    help="Show job output as written: keep every escape sequence, not only colours (trusted jobs only).",
)
@click.option(
    "--secrets-file", type=click.Path(dir_okay=False, path_type=Path), help="KEY=VALUE secrets file."
)
@click.option("-f", "--file", type=click.Path(dir_okay=False, path_type=Path), help="Pipeline file.")
@db_option
@click.option("--no-cache", is_flag=True, help="Run every job; neither read nor write the job cache.")
@click.option(
    "--strict",
    is_flag=True,
    help="Fail a job whose declared output path matches no file (else a warning); "
    "in a GitLab file, image/services are errors.",
)
@click.option(
    "--force", is_flag=True, help="Deploy even to environments that already run the version (redeploy)."
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Shared cache directory (default: .buildyard/cas).",
)
@click.option(
    "--remote-cache",
    metavar="URL",
    callback=setting_default("remote_cache"),
    help="Remote cache server (default: the remote_cache setting, BUILDYARD_REMOTE_CACHE; token from "
    "BUILDYARD_REMOTE_CACHE_TOKEN).",
)
@click.option(
    "--summary",
    "summary_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a Markdown run summary (jobs, cache, gates, tests, coverage, benchmarks) here.",
)
@click.option(
    "--executor",
    metavar="NAME",
    help="Where jobs run: local, pool, dask://HOST:PORT (agents of a Dask cluster) or a plugin's "
    "(default: the executor setting, BUILDYARD_EXECUTOR).",
)
@click.option(
    "--keep-workspaces",
    is_flag=True,
    help="Keep the workspace of an isolated job that fails (its path is in the failure line).",
)
@click.pass_context
def run(
    ctx: click.Context,
    jobs: tuple[str, ...],
    parallel: int | None,
    event: str,
    changed: tuple[str, ...],
    branch: str | None,
    tag: str | None,
    var: tuple[str, ...],
    manual: tuple[str, ...],
    fail_fast: bool,
    dry_run: bool,
    as_json: bool,
    stream: bool,
    raw: bool,
    secrets_file: Path | None,
    file: Path | None,
    db: str | None,
    no_cache: bool,
    strict: bool,
    force: bool,
    cache_dir: Path | None,
    remote_cache: str | None,
    summary_file: Path | None,
    keep_workspaces: bool,
    executor: str | None,
) -> int:
    """Run the pipeline as a DAG on this machine and record it."""
    from buildyard.engine.runner import RunOptions, execute_run  # noqa: PLC0415
    from buildyard.settings import load as load_settings  # noqa: PLC0415

    imported = None
    if file is not None:
        from buildyard.importers import load_foreign  # noqa: PLC0415
        from buildyard.spec.load import find_file  # noqa: PLC0415

        imported = load_foreign(
            find_file(project_dir(ctx), file),
            project_dir(ctx),
            event=event,
            branch=branch,
            tag=tag,
            variables=_parse_vars(list(var)),
            strict=strict,
        )
        for note in imported.notes if imported else ():
            print(f"warning: {note}", file=sys.stderr)
    if changed:
        from buildyard.triggers.local import check_local_run  # noqa: PLC0415

        verdict = check_local_run(
            project_dir(ctx),
            file,
            Event(event),
            branch=branch,
            tag=tag,
            changed=changed,
            pipeline=imported.pipeline if imported else None,
        )
        if not verdict.triggered:
            click.echo(f"not triggered: {verdict.reason}")
            return 0
    options = RunOptions(
        project_dir=project_dir(ctx),
        file=file,
        pipeline=imported.pipeline if imported else None,
        select=jobs,
        slots=parallel,
        event=Event(event),
        branch=branch,
        tag=tag,
        variables=_parse_vars(list(var)),
        manual=frozenset(manual),
        fail_fast=fail_fast,
        dry_run=dry_run,
        secrets_file=secrets_file,
        db_url=db,
        kill_grace=load_settings(project_dir(ctx)).kill_grace,
        cache=not no_cache,
        cache_dir=cache_dir,
        remote_cache=remote_cache,
        force_deploy=force,
        strict=strict,
        keep_workspaces=keep_workspaces,
        executor=executor,
    )
    if dry_run:
        _print_plan(execute_run(options).plan, as_json=as_json)
        return 0
    out = sys.stderr if as_json else sys.stdout
    renderer: Any
    if out.isatty() and not stream:
        from buildyard.cli.render import RichRenderer  # noqa: PLC0415

        renderer = RichRenderer(raw=raw)
    else:
        from buildyard.cli.render import PlainRenderer  # noqa: PLC0415

        renderer = PlainRenderer(out, stream=stream, raw=raw)
    try:
        result = execute_run(options, renderer)
    finally:
        if hasattr(renderer, "close"):
            renderer.close()
    run_rec = result.run
    assert run_rec is not None  # noqa: S101 - a non-dry run is always recorded
    if result.pipeline.notify:
        from buildyard.engine.notifying import notify_run_end  # noqa: PLC0415

        notified = notify_run_end(options, result)
        if notified.pending:
            click.echo(
                f"buildyard: warning: {notified.pending} of {notified.queued} notifications not delivered "
                "yet (kept in the outbox, retried by the next run)",
                err=True,
            )
    if as_json:  # the recorded run, read back: the same object as ``show --json`` and the REST API
        from buildyard.engine.runner import open_history  # noqa: PLC0415
        from buildyard.views import load_run  # noqa: PLC0415

        store = open_history(options)
        try:
            summary = load_run(store, run_rec.id, log_exists=os.path.exists).to_json()
        finally:
            store.close()
        sys.stdout.write(result.masker.mask_text(json.dumps(summary, indent=2)) + "\n")
    else:
        from buildyard.spec.durations import format_duration  # noqa: PLC0415
        from buildyard.termtext import safe_text  # noqa: PLC0415

        for j in result.jobs:
            for gate in j.gate_results:
                decision = gate.result
                line = f"gate {decision.status.value:<7} {j.id}: {decision.gate}: {decision.reason}"
                print(safe_text(line), file=out)
        if result.triage is not None:
            for label, tests in (
                ("new failure", result.triage.new),
                ("known failure", result.triage.known),
                ("fixed", result.triage.fixed),
            ):
                for test in tests:
                    print(safe_text(f"{label}: {'::'.join(part for part in test[1:] if part)}"), file=out)
        for flaky in result.flaky:
            if flaky.new:  # known flakes are listed by ``buildyard tests flaky``, not in every run
                print(safe_text(f"flaky: {flaky.display_name}"), file=out)
        counts: dict[str, int] = {}
        for j in result.jobs:
            counts[str(j.status)] = counts.get(str(j.status), 0) + 1
        detail = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        took = format_duration(run_rec.duration_s or 0.0)
        print(
            f"run #{run_rec.number} {result.status} in {took} ({detail}); "
            f"details: buildyard show {run_rec.number}",
            file=out,
        )
    if summary_file is not None:
        _write_summary(summary_file, result)
    return result.status.exit_code


def _write_summary(path: Path, result: Any) -> None:
    """The Markdown summary a reviewer reads (written atomically)."""
    from buildyard.engine.request import CacheStatus  # noqa: PLC0415
    from buildyard.fsutil import atomic_write_text  # noqa: PLC0415
    from buildyard.gates.summary import JobRow, render_summary  # noqa: PLC0415

    run_rec = result.run
    rows = [
        JobRow(
            name=j.id,
            status=str(j.status),
            duration=j.duration_s,
            cached=j.cache_status == CacheStatus.HIT,
            note=j.message or (str(j.skip_reason) if j.skip_reason else ""),
        )
        for j in result.jobs
    ]
    gates = [g.result for j in result.jobs for g in j.gate_results]
    text = render_summary(
        title=f"{run_rec.pipeline} run #{run_rec.number}",
        status=str(result.status),
        jobs=rows,
        gates=gates,
        triage=result.triage,
        flaky=result.flaky,
    )
    atomic_write_text(path, result.masker.mask_text(text))


@click.command()
@click.option("-f", "--file", type=click.Path(dir_okay=False, path_type=Path), help="Pipeline file.")
@click.pass_context
def validate(ctx: click.Context, file: Path | None) -> int:
    """Check the pipeline file; print every problem with file:line:col."""
    from buildyard.spec.lint import warnings  # noqa: PLC0415
    from buildyard.spec.load import find_file, load  # noqa: PLC0415

    path = find_file(project_dir(ctx), file)
    imported = None
    if file is not None:
        from buildyard.importers import load_foreign  # noqa: PLC0415 - only for a named file

        imported = load_foreign(path, project_dir(ctx))
        for note in imported.notes if imported else ():
            print(f"warning: {note}", file=sys.stderr)
    pipeline = imported.pipeline if imported else load(path)
    for warning in warnings(pipeline):
        print(warning, file=sys.stderr)
    print(f"{path}: valid ({len(pipeline.jobs)} jobs)")
    return 0


@click.command()
def schema() -> int:
    """Print the JSON Schema of buildyard.yml (for editors)."""
    from buildyard.spec.schema import json_schema  # noqa: PLC0415

    print_json(json_schema())
    return 0


def _print_plan(plan: Any, *, as_json: bool) -> None:
    rows = [
        {
            "name": iid,
            "stage": inst.stage,
            "needs": list(inst.needs),
            "priority": plan.priority[iid],
            "skip": str(plan.skips[iid].reason) if iid in plan.skips else None,
            "reason": plan.skips[iid].message if iid in plan.skips else None,
        }
        for iid, inst in plan.instances.items()
    ]
    if as_json:
        print_json({"pipeline": plan.pipeline, "jobs": rows})
        return
    from buildyard.termtext import safe_text  # noqa: PLC0415

    print(safe_text(f"plan of {plan.pipeline}: {len(rows)} jobs"))
    for row in rows:
        needs = f" ← {', '.join(row['needs'])}" if row["needs"] else ""
        skip = f"  [{row['skip']}: {row['reason']}]" if row["skip"] else ""
        print(safe_text(f"  {row['name']}{needs}{skip}"))
