"""The ``buildyard scan`` command group: ``scan secrets`` (committed credentials)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from buildyard.cli._common import project_dir

app = typer.Typer(help="Scan the project for security problems.", no_args_is_help=True, rich_markup_mode=None)


@app.command("secrets")
def secrets_command(
    ctx: typer.Context,
    path: Annotated[Path | None, typer.Argument(help="File or directory to scan (default: project).")] = None,
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="detect-secrets baseline of accepted secrets.")
    ] = None,
    update_baseline: Annotated[
        bool, typer.Option("--update-baseline", help="Accept every current finding into --baseline.")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, json or sarif.")] = "table",
) -> None:
    """Find committed credentials (detect-secrets); exit 1 on findings not in the baseline."""
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
        typer.echo(f"{len(result.findings)} secrets accepted into {baseline}")
        return
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
            typer.echo(f"{f.file}:{f.line}: {f.type}{mark}")
        typer.echo(f"{result.files_scanned} files scanned, {len(result.new)} new secrets")
    if result.new:
        raise typer.Exit(1)
