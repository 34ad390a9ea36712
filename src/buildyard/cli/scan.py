"""The ``buildyard scan`` command group: ``scan secrets`` (committed credentials)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from buildyard.cli._common import project_dir


@click.group(name="scan")
def app() -> None:
    """Scan the project for security problems."""


@app.command("secrets")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option(
    "--baseline", type=click.Path(path_type=Path), help="detect-secrets baseline of accepted secrets."
)
@click.option("--update-baseline", is_flag=True, help="Accept every current finding into --baseline.")
@click.option("--format", "-f", "fmt", default="table", show_default=True, help="table, json or sarif.")
@click.pass_context
def secrets_command(
    ctx: click.Context, path: Path | None, baseline: Path | None, update_baseline: bool, fmt: str
) -> int:
    """Find committed credentials (detect-secrets); exit 1 on findings not in the baseline.

    PATH: file or directory to scan (default: project).
    """
    from buildyard.deps.secrets import scan_secrets, secrets_sarif, write_baseline  # noqa: PLC0415
    from buildyard.errors import UsageError  # noqa: PLC0415

    if fmt not in ("table", "json", "sarif"):
        raise UsageError(f"--format must be table, json or sarif, not {fmt!r}")
    if update_baseline and baseline is None:
        raise UsageError("--update-baseline needs --baseline FILE")
    root = project_dir(ctx)
    target = (path if path.is_absolute() else root / path) if path else root
    if baseline is not None and not baseline.is_absolute():
        baseline = root / baseline
    if not target.exists():
        raise UsageError(f"{target}: no such file or directory")
    result = scan_secrets(target, None if update_baseline else baseline)
    if update_baseline and baseline is not None:
        write_baseline(result, baseline)
        click.echo(f"{len(result.findings)} secrets accepted into {baseline}")
        return 0
    if fmt == "json":
        doc = {
            "files_scanned": result.files_scanned,
            "findings": [
                {
                    "file": f.file,
                    "line": f.line,
                    "type": f.type,
                    "hashed_secret": f.hashed_secret,
                    "accepted": f.accepted,
                }
                for f in result.findings
            ],
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif fmt == "sarif":
        sys.stdout.write(json.dumps(secrets_sarif(result), indent=2) + "\n")
    else:
        for f in result.findings:
            mark = " (accepted)" if f.accepted else ""
            click.echo(f"{f.file}:{f.line}: {f.type}{mark}")
        click.echo(f"{result.files_scanned} files scanned, {len(result.new)} new secrets")
    return 1 if result.new else 0
