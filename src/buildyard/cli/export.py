"""``buildyard export``: the pipeline as a GitLab CI or GitHub Actions file."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from buildyard.cli._common import json_option, print_json, project_dir


@click.command("export")
@click.option(
    "--to",
    "target",
    type=click.Choice(["gitlab-ci", "github-actions"]),
    required=True,
    help="The format to write.",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default: stdout)."
)
@click.option("-f", "--file", type=click.Path(dir_okay=False, path_type=Path), help="Pipeline file.")
@json_option
@click.pass_context
def export(ctx: click.Context, target: str, output: Path | None, file: Path | None, as_json: bool) -> int:
    """Write the pipeline as a .gitlab-ci.yml or a GitHub Actions workflow; list what it could not carry."""
    from buildyard.exporters import Target  # noqa: PLC0415
    from buildyard.exporters import export as export_pipeline  # noqa: PLC0415
    from buildyard.fsutil import atomic_write_text  # noqa: PLC0415
    from buildyard.spec.load import find_file, load  # noqa: PLC0415

    project = project_dir(ctx)
    pipeline = load(find_file(project, file))
    exported = export_pipeline(pipeline, Target(target))
    if output is not None:
        atomic_write_text(output if output.is_absolute() else project / output, exported.text)
    notes = [str(n) for n in exported.notes]
    if as_json:
        print_json(
            {
                "output": str(output) if output else None,
                "not_carried": notes,
                **({"document": exported.document} if output is None else {}),
            }
        )
        return 0
    if output is None:
        sys.stdout.write(exported.text)
    for note in notes:
        print(f"not carried: {note}", file=sys.stderr)
    if output is not None:
        print(f"wrote {output} ({len(pipeline.jobs)} jobs, {len(notes)} notes)", file=sys.stderr)
    return 0
