"""The ``buildyard deps`` command group: ls, scan, licenses, sbom, db update."""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from buildyard.cli._common import print_json, project_dir

FORMATS = ("table", "json", "sarif", "cyclonedx")

#: The optional PATHS... argument of ls, scan, licenses and sbom (explained in each command's help).
paths_argument = click.argument("paths", nargs=-1, type=click.Path(path_type=Path))


@click.group(name="deps")
def app() -> None:
    """Dependencies: inventory, vulnerabilities (OSV, offline), licenses and SBOMs."""


@app.group(name="db")
def db_app() -> None:
    """The offline OSV vulnerability database."""


def _paths(ctx: click.Context, paths: Sequence[Path]) -> list[Path]:
    root = project_dir(ctx)
    return [p if p.is_absolute() else root / p for p in paths] if paths else [root]


def _opt(ctx: click.Context, path: Path | None) -> Path | None:
    """A path option, relative to the project directory like PATH arguments (``-C`` semantics)."""
    if path is None or path.is_absolute():
        return path
    return project_dir(ctx) / path


def _warn(message: str) -> None:
    sys.stderr.write(f"buildyard: warning: {message}\n")


def _problems(problems: list[Any]) -> int:
    for problem in problems:
        sys.stderr.write(f"buildyard: error: {problem}\n")
    return 2 if problems else 0


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    from buildyard.fsutil import atomic_write_text  # noqa: PLC0415

    atomic_write_text(output, text if text.endswith("\n") else text + "\n")


@app.command("ls")
@paths_argument
@click.option("--json", "as_json", is_flag=True, help="Print the inventory as JSON.")
@click.pass_context
def ls_command(ctx: click.Context, paths: tuple[Path, ...], as_json: bool) -> int:
    """List every dependency found in the lockfiles under PATH (respecting .gitignore).

    PATHS: lockfiles, project directories, site-packages or node_modules (default: project).
    """
    from buildyard.deps import api  # noqa: PLC0415
    from buildyard.deps.report import inventory_json  # noqa: PLC0415

    inv = api.inventory(_paths(ctx, paths), project_dir(ctx))
    if as_json:
        print_json(inventory_json(inv))
    else:
        rows = [
            [
                p.ecosystem.value,
                p.name,
                p.version,
                "?" if p.direct is None else "yes" if p.direct else "no",
                p.scope.value,
                p.location,
            ]
            for p in inv.packages
        ]
        text = render_table(["ecosystem", "name", "version", "direct", "scope", "source"], rows)
        _write(text + f"{len(inv.packages)} packages in {len(inv.files)} files", None)
    return _problems(inv.problems)


@app.command("scan")
@paths_argument
@click.option("--db", type=click.Path(path_type=Path), help="Directory of <Ecosystem>/all.zip OSV dumps.")
@click.option("--cache", type=click.Path(path_type=Path), help="Index cache directory.")
@click.option(
    "--severity",
    default="none",
    show_default=True,
    help="Fail only on findings at or above: low, medium, high, critical.",
)
@click.option(
    "--ignore-file",
    type=click.Path(path_type=Path),
    help="YAML list of accepted findings (id, reason, expires).",
)
@click.option(
    "--format", "-f", "fmt", default="table", show_default=True, help="table, json, sarif or cyclonedx."
)
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Write the report to this file.")
@click.pass_context
def scan_command(
    ctx: click.Context,
    paths: tuple[Path, ...],
    db: Path | None,
    cache: Path | None,
    severity: str,
    ignore_file: Path | None,
    fmt: str,
    output: Path | None,
) -> int:
    """Find known vulnerabilities (OSV) in the dependencies; exit 1 on findings, 2 on bad input.

    PATHS: lockfiles, project directories, site-packages or node_modules (default: project).
    """
    from buildyard.deps import api  # noqa: PLC0415
    from buildyard.errors import UsageError  # noqa: PLC0415
    from buildyard.model import Severity  # noqa: PLC0415

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    try:
        threshold = Severity(severity.lower())
    except ValueError:
        raise UsageError(
            f"--severity must be one of none, low, medium, high, critical, not {severity!r}"
        ) from None
    root = project_dir(ctx)
    result = api.scan(
        _paths(ctx, paths),
        project=root,
        db_dir=_opt(ctx, db),
        cache_dir=_opt(ctx, cache),
        threshold=threshold,
        ignore_file=_opt(ctx, ignore_file),
    )
    output = _opt(ctx, output)
    for warning in result.warnings:
        _warn(warning)
    if fmt == "json":
        import json  # noqa: PLC0415

        from buildyard.deps.report import scan_json  # noqa: PLC0415

        _write(json.dumps(scan_json(result), indent=2), output)
    elif fmt == "sarif":
        import json  # noqa: PLC0415

        from buildyard.deps.report import sarif_log  # noqa: PLC0415

        _write(json.dumps(sarif_log(result), indent=2), output)
    elif fmt == "cyclonedx":
        _write(api.sbom([], project=root, result=result), output)
    else:
        _scan_table(result, output)
    return _problems(result.inventory.problems) or (1 if result.failing else 0)


def _scan_table(result: Any, output: Path | None) -> None:
    order = sorted(
        result.findings,
        key=lambda f: (-f.severity.rank if f.severity.value != "unknown" else -4.5, f.package.name, f.id),
    )
    rows = []
    for f in order:
        note = "below threshold" if f.below_threshold else ""
        if f.ignored_by:
            note = f"ignored until {f.ignored_by.expires}: {f.ignored_by.reason}"
        score = f" {f.rating.score:.1f}" if f.rating.score is not None else ""
        ids = f.id + (f" ({', '.join(f.aliases[:2])})" if f.aliases else "")
        rows.append(
            [
                f"{f.severity.value}{score}",
                f.package.name,
                f.package.version,
                ids,
                f.fixed or "-",
                f.package.location,
                note,
            ]
        )
    headers = ["severity", "package", "version", "vulnerability", "fixed in", "location", "note"]
    summary = (
        f"{len(result.inventory.packages)} packages scanned, {len(result.findings)} findings, "
        f"{len(result.failing)} failing"
    )
    _write(render_table(headers, rows, plain=True if output else None) + summary, output)


def render_table(headers: list[str], rows: list[list[str]], *, plain: bool | None = None) -> str:
    """A Rich table on a terminal; tab-separated lines (header first) when piped or written to a file."""
    if plain is None:
        plain = not sys.stdout.isatty()
    if plain:
        return "".join("\t".join(cells) + "\n" for cells in [headers, *rows])
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table(*headers)
    for cells in rows:
        table.add_row(*cells)
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text(styles=True)


@app.command("licenses")
@paths_argument
@click.option("--allow", default="", help="Comma-separated SPDX ids that are allowed.")
@click.option("--deny", default="", help="Comma-separated SPDX ids that are denied.")
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(path_type=Path),
    help="YAML policy (licenses: allow, deny, exceptions).",
)
@click.option("--allow-unknown", is_flag=True, help="Do not fail on packages whose license is unknown.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.pass_context
def licenses_command(
    ctx: click.Context,
    paths: tuple[Path, ...],
    allow: str,
    deny: str,
    policy_file: Path | None,
    allow_unknown: bool,
    as_json: bool,
) -> int:
    """Check dependency licenses against an allow/deny policy; exit 1 on violations.

    Without --allow/--deny/--policy, the 'deps: licenses:' section of buildyard.yml applies.

    PATHS: lockfiles, project directories, site-packages or node_modules (default: project).
    """
    from buildyard.deps import api  # noqa: PLC0415
    from buildyard.deps.licenses import resolve_policy  # noqa: PLC0415

    root = project_dir(ctx)
    policy = resolve_policy(
        root,
        policy_file=_opt(ctx, policy_file),
        allow=allow.split(","),
        deny=deny.split(","),
        allow_unknown=allow_unknown,
    )
    report = api.licenses(_paths(ctx, paths), policy, project=root)
    if as_json:
        print_json(
            [
                {
                    "package": r.package.name,
                    "version": r.package.version,
                    "ecosystem": r.package.ecosystem.value,
                    "license": r.license.expression,
                    "status": r.license.status.value,
                    "verdict": r.verdict.value,
                    "reason": r.reason,
                    "license_source": r.source or None,
                }
                for r in report.results
            ]
        )
    else:
        rows = [
            [r.verdict.value, r.package.name, r.package.version, str(r.license), r.source or "-", r.reason]
            for r in sorted(report.results, key=lambda r: (r.verdict.value, r.package.name))
        ]
        text = render_table(["verdict", "package", "version", "license", "from", "reason"], rows)
        _write(text + f"{len(report.results)} packages, {len(report.violations)} violations", None)
    return 1 if report.violations else 0


@app.command("sbom")
@paths_argument
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Write the SBOM to this file.")
@click.option("--name", help="Name of the root component.")
@click.option("--pretty", is_flag=True, help="Indent the JSON.")
@click.option("--validate", is_flag=True, help="Check the document against the CycloneDX 1.6 schema first.")
@click.pass_context
def sbom_command(
    ctx: click.Context,
    paths: tuple[Path, ...],
    output: Path | None,
    name: str | None,
    pretty: bool,
    validate: bool,
) -> int:
    """Write a CycloneDX 1.6 JSON SBOM of the dependencies.

    PATHS: lockfiles, project directories, site-packages or node_modules (default: project).
    """
    from buildyard.deps.installed import with_installed_licenses  # noqa: PLC0415
    from buildyard.deps.inventory import build_inventory  # noqa: PLC0415
    from buildyard.deps.sbom import bom_json, build_bom  # noqa: PLC0415

    root = project_dir(ctx)
    inv = build_inventory(_paths(ctx, paths), root)
    inv.packages = with_installed_licenses(inv.packages, root, inv.files)

    text = bom_json(build_bom(inv, (), name or root.name), pretty=pretty)
    output = _opt(ctx, output)
    if validate:
        from buildyard.deps.sbom import validate_bom_json  # noqa: PLC0415
        from buildyard.errors import BuildyardError  # noqa: PLC0415

        error = validate_bom_json(text)
        if error is not None:  # a bug in the writer, not a user mistake: show it whole
            raise BuildyardError(f"generated SBOM is not valid CycloneDX 1.6: {error}")
    _write(text, output)
    return _problems(inv.problems)


@db_app.command("update")
@click.option("--db", type=click.Path(path_type=Path), help="Directory to write the dumps to.")
@click.option("--ecosystem", "-e", multiple=True, help="Ecosystem to fetch (repeatable; default: all).")
@click.option("--url", help="Base URL of the dumps.")
@click.pass_context
def db_update_command(
    ctx: click.Context, db: Path | None, ecosystem: tuple[str, ...], url: str | None
) -> None:
    """Download the OSV per-ecosystem dumps (<Ecosystem>/all.zip) for offline scans."""
    from buildyard.deps.model import Ecosystem  # noqa: PLC0415
    from buildyard.deps.osvdb import DEFAULT_URL, default_db_dir, update_database  # noqa: PLC0415
    from buildyard.errors import UsageError  # noqa: PLC0415

    names = {e.value.lower(): e for e in Ecosystem}
    chosen = []
    for value in ecosystem or [e.value for e in Ecosystem]:
        if value.lower() not in names:
            raise UsageError(
                f"--ecosystem: unknown {value!r} (one of {', '.join(e.value for e in Ecosystem)})"
            )
        chosen.append(names[value.lower()])
    target = _opt(ctx, db) or default_db_dir(project_dir(ctx))
    written = update_database(target, chosen, url or DEFAULT_URL)
    for eco, size in written.items():
        click.echo(f"{eco.value}: {size} bytes -> {target / eco.value / 'all.zip'}")
