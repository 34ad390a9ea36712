"""Presentation helpers shared by command modules: project directory, JSON output, consoles."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer


def project_dir(ctx: typer.Context) -> Path:
    """The project directory chosen with ``-C`` (absolute)."""
    root = ctx.find_root()
    obj = root.obj if isinstance(root.obj, Path) else Path()
    return obj.resolve()


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()
