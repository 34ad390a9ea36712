"""``buildyard report``: documents about the pipeline's runs (``--format build-output``)."""

from __future__ import annotations

import sys

import click

from buildyard.cli._common import db_option, json_option, print_json, project_dir


@click.command("report")
@click.option(
    "--format",
    "kind",
    type=click.Choice(["build-output"]),
    default="build-output",
    show_default=True,
    help="The document to print.",
)
@click.option("--pipeline", help="The pipeline (default: the one of the latest run).")
@click.option("--runs", type=click.IntRange(1, 1000), default=20, show_default=True, help="Runs measured.")
@db_option
@json_option
@click.pass_context
def report(
    ctx: click.Context, kind: str, pipeline: str | None, runs: int, db: str | None, as_json: bool
) -> int:
    """Print the build_output document (artifacts, deployments, build time, success rate) as YAML or JSON."""
    import yaml  # noqa: PLC0415

    from buildyard.artifacts.api import open_repository  # noqa: PLC0415
    from buildyard.buildoutput import build_output  # noqa: PLC0415
    from buildyard.engine.runner import RunOptions, open_checked_history  # noqa: PLC0415

    project = project_dir(ctx)
    history = open_checked_history(RunOptions(project_dir=project, db_url=db))
    try:
        document = build_output(
            history, pipeline=pipeline, project=project, repository=open_repository(project), window=runs
        )
    finally:
        history.close()
    if as_json:
        print_json(document)
    else:
        sys.stdout.write(yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=110))
    return 0
