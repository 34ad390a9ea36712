"""Assembles the Typer application from the command modules.

Each command module owns one command group and imports only ``typer`` at module level; services are
imported inside the command functions.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer

from buildyard import __version__

#: (module, group name or None for top-level commands). A group module exposes ``app``; a top-level
#: module exposes ``register(app)``.
COMMAND_MODULES: tuple[tuple[str, str | None], ...] = (
    ("buildyard.cli.run", None),
    ("buildyard.cli.history", None),
    ("buildyard.cli.gates", "gates"),
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"buildyard {__version__}")
        raise typer.Exit


def build_app() -> typer.Typer:
    """Return the full CLI application."""
    app = typer.Typer(
        name="buildyard",
        help="Run buildyard.yml pipelines as a DAG on this machine, cached, gated and recorded.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )

    @app.callback()
    def root(
        ctx: typer.Context,
        directory: Annotated[
            Path, typer.Option("-C", "--directory", help="Project directory (default: current).")
        ] = Path(),
        version: Annotated[
            bool,
            typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
        ] = False,
    ) -> None:
        ctx.obj = directory

    for module_name, group in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        if group is None:
            module.register(app)
        else:
            app.add_typer(module.app, name=group)
    return app
