"""``buildyard design``: write buildyard.yml and its design document from a build_requirements file."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from buildyard.cli._common import json_option, print_json, project_dir

DEFAULT_DOC = Path("docs/pipeline-design.md")


@click.command("design")
@click.argument("requirements", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("buildyard.yml"),
    show_default=True,
    help="The pipeline file to write.",
)
@click.option(
    "--doc",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_DOC,
    show_default=True,
    help="The Markdown design document to write.",
)
@click.option("--force", is_flag=True, help="Replace an existing pipeline file.")
@json_option
@click.pass_context
def design(
    ctx: click.Context, requirements: Path, output: Path, doc: Path, force: bool, as_json: bool
) -> int:
    """Design a pipeline (gates, timeouts, deployments) and its design document from requirements."""
    from buildyard.design import design as make  # noqa: PLC0415
    from buildyard.design import gitignore, parse_requirements, to_yaml  # noqa: PLC0415
    from buildyard.errors import UserError  # noqa: PLC0415
    from buildyard.fsutil import atomic_write_text  # noqa: PLC0415
    from buildyard.spec.load import loads, read_text  # noqa: PLC0415

    project = project_dir(ctx)
    source = requirements if requirements.is_absolute() else project / requirements
    req = parse_requirements(read_text(source), str(requirements))
    made = make(req)
    text = to_yaml(made.document, source=str(requirements))
    target = output if output.is_absolute() else project / output
    if target.exists() and not force:
        raise UserError(f"{output} exists: use --force to replace it (or -o another file)")
    loads(text, str(output))  # the design is a valid pipeline, or a bug
    doc_target = doc if doc.is_absolute() else project / doc
    doc_target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(doc_target, made.markdown)
    atomic_write_text(target, text)
    ignore_file = project / ".gitignore"
    ignored = gitignore(ignore_file.read_text() if ignore_file.exists() else "", made.ignores)
    if ignored is not None:
        atomic_write_text(ignore_file, ignored)
    if as_json:
        print_json({"pipeline": str(output), "document": str(doc), "jobs": list(made.document["jobs"])})
    else:
        also = " (and the jobs' outputs to .gitignore)" if ignored is not None else ""
        print(f"wrote {output} ({len(made.document['jobs'])} jobs) and {doc}{also}", file=sys.stderr)
    return 0
