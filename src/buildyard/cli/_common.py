"""Presentation helpers shared by command modules: project directory, JSON output."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click


def project_dir(ctx: click.Context) -> Path:
    """The project directory chosen with ``-C`` (absolute)."""
    obj = ctx.find_root().obj
    return (obj if isinstance(obj, Path) else Path()).resolve()


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
db_option = click.option(
    "--db", envvar="BUILDYARD_DB", help="History database URL (default: SQLite in .buildyard/)."
)
