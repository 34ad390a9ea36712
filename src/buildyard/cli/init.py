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
    from buildyard.errors import UsageError  # noqa: PLC0415
    from buildyard.fsutil import atomic_write_text  # noqa: PLC0415
    from buildyard.scaffold import read_repo, render, scaffold, update_gitignore  # noqa: PLC0415
    from buildyard.spec.load import loads  # noqa: PLC0415

    project = project_dir(ctx)
    if not project.is_dir():
        raise UsageError(f"{project}: no such directory")
    target = output if output.is_absolute() else project / output
    if not dry_run and (target.exists() or target.is_symlink()) and not force:
        raise UsageError(f"{target}: already exists; use --force to overwrite it, or --dry-run to print one")
    result = scaffold(read_repo(project))
    text = render(result)
    loads(text, file=str(output))  # the file must load: a failure here is a bug of init, shown whole
    if dry_run:
        if as_json:
            print_json({"document": result.document, "notes": list(result.notes)})
        else:
            sys.stdout.write(text)
        return 0
    atomic_write_text(target, text)
    ignored = [] if no_gitignore else update_gitignore(project, result.ignores)
    components = [{"stack": c.stack.value, "tool": c.tool, "path": c.path or "."} for c in result.components]
    if as_json:
        print_json({"output": str(target), "components": components, "jobs": list(result.document["jobs"]),
                    "notes": list(result.notes), "gitignore_added": ignored})  # fmt: skip
        return 0
    for c in components:
        click.echo(f"found {c['stack']} ({c['tool']}) in {c['path']}", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if ignored:
        click.echo(f"added to .gitignore (what the jobs write): {' '.join(ignored)}", err=True)
    click.echo(f"wrote {output} ({len(result.document['jobs'])} jobs); run it with: buildyard run", err=True)
    return 0
