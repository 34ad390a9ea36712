"""``buildyard import``: a foreign pipeline file (``.gitlab-ci.yml``, a GitHub Actions workflow) ->
``buildyard.yml``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from buildyard.cli._common import json_option, print_json, project_dir
from buildyard.model import Event


@click.command("import")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default: stdout)."
)
@click.option(
    "--event",
    type=click.Choice([e.value for e in Event]),
    default=Event.PUSH.value,
    show_default=True,
    help="Trigger the rules are decided for.",
)
@click.option("--branch", help="Branch the rules are decided for (default: from git).")
@click.option("--tag", help="Tag the rules are decided for (default: from git).")
@click.option("--var", "var", multiple=True, metavar="KEY=VALUE", help="A pipeline variable the rules see.")
@click.option("--strict", is_flag=True, help="image/services (GitHub: services/container) are errors.")
@json_option
@click.pass_context
def import_(
    ctx: click.Context,
    source: Path,
    output: Path | None,
    event: str,
    branch: str | None,
    tag: str | None,
    var: tuple[str, ...],
    strict: bool,
    as_json: bool,
) -> int:
    """Convert a GitLab CI file or a GitHub Actions workflow into buildyard.yml; list what is not carried."""
    from buildyard.cli.run import _parse_vars  # noqa: PLC0415
    from buildyard.fsutil import atomic_write_text  # noqa: PLC0415
    from buildyard.importers import load_foreign  # noqa: PLC0415
    from buildyard.importers.render import to_yaml  # noqa: PLC0415
    from buildyard.spec.load import find_file  # noqa: PLC0415

    project = project_dir(ctx)
    imported = load_foreign(
        find_file(project, source),
        project,
        event=event,
        branch=branch,
        tag=tag,
        variables=_parse_vars(list(var)),
        strict=strict,
        force=True,
    )
    assert imported is not None  # noqa: S101 - force converts whatever the name
    text = to_yaml(imported, source=str(source), trigger=_trigger(event, branch, tag))
    if output is not None:
        target = output if output.is_absolute() else project / output
        atomic_write_text(target, text)
    elif not as_json:
        sys.stdout.write(text)
    notes = [str(n) for n in imported.notes]
    if as_json:
        data: dict[str, Any] = {"output": str(output) if output else None, "not_carried": notes}
        if output is None:
            data["document"] = imported.document
        print_json(data)
    else:
        for note in notes:
            print(f"not carried: {note}", file=sys.stderr)
        if output is not None:
            print(f"wrote {output} ({len(imported.pipeline.jobs)} jobs, {len(notes)} notes)", file=sys.stderr)
    return 0


def _trigger(event: str, branch: str | None, tag: str | None) -> str:
    parts = [event]
    if branch:
        parts.append(f"branch {branch}")
    if tag:
        parts.append(f"tag {tag}")
    return ", ".join(parts)
