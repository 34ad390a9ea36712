"""Presentation helpers shared by command modules: project directory, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
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


def setting_default(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """An option callback: the value given on the command line, else the setting ``name``
    (environment, config files, default — see :mod:`buildyard.settings`)."""

    def fill(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is not None and value != ():
            return value
        from buildyard.settings import load  # noqa: PLC0415 - lazy: fast CLI start

        configured = getattr(load(project_dir(ctx)), name)
        return value if configured is None else configured

    return fill


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
db_option = click.option(
    "--db",
    callback=setting_default("db"),
    help="History database URL (default: the db setting, BUILDYARD_DB; else SQLite in .buildyard/).",
)
