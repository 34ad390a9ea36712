"""``buildyard init``: write a ``buildyard.yml`` for the repository (see :mod:`buildyard.scaffold`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from buildyard.cli._common import json_option, print_json, project_dir


@click.command("init")
@click.option("--force", is_flag=True, help="Overwrite an existing pipeline file.")
@click.option("--dry-run", is_flag=True, help="Print the pipeline instead of writing it.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("buildyard.yml"),
    show_default=True,
    help="Where to write (relative to the project).",
)
@click.option("--no-gitignore", is_flag=True, help="Leave .gitignore as it is.")
@json_option
@click.pass_context
def init(
    ctx: click.Context, force: bool, dry_run: bool, output: Path, no_gitignore: bool, as_json: bool
) -> int:
    """Look at the repository and write a buildyard.yml that passes on it (lint, build, test, scan,
    SBOM, signed release, gates, caching); add what its jobs write to .gitignore."""
    from buildyard.scaffold import init_repository  # noqa: PLC0415

    made = init_repository(project_dir(ctx), output, force=force, dry_run=dry_run, gitignore=not no_gitignore)
    result = made.scaffold
    if made.written is None:
        if as_json:
            print_json({"document": result.document, "notes": list(result.notes)})
        else:
            sys.stdout.write(made.text)
        return 0
    components = [{"stack": c.stack.value, "tool": c.tool, "path": c.path or "."} for c in result.components]
    if as_json:
        print_json(
            {
                "output": str(made.written),
                "components": components,
                "jobs": list(result.document["jobs"]),
                "notes": list(result.notes),
                "gitignore_added": list(made.gitignore_added),
            }
        )
        return 0
    for c in components:
        click.echo(f"found {c['stack']} ({c['tool']}) in {c['path']}", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if made.gitignore_added:
        click.echo(f"added to .gitignore (what the jobs write): {' '.join(made.gitignore_added)}", err=True)
    click.echo(f"wrote {output} ({len(result.document['jobs'])} jobs); run it with: buildyard run", err=True)
    return 0
