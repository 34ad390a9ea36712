"""``buildyard config``: every setting, its value and where it came from (see :mod:`buildyard.settings`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from buildyard.cli._common import json_option, print_json, project_dir
from buildyard.errors import UsageError

if TYPE_CHECKING:
    from buildyard.settings import Origin


@click.command("config")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="NAME=VALUE",
    help="Show the settings as a command line setting NAME would make them (repeatable).",
)
@json_option
@click.pass_context
def config(ctx: click.Context, overrides: tuple[str, ...], as_json: bool) -> None:
    """List every setting: value and source (default, file PATH, env VAR or cli).

    Precedence: command line > environment (BUILDYARD_*) > the project's .buildyard/config.toml >
    the user's ~/.config/buildyard/config.toml > default. Secrets are shown as ***.
    """
    from buildyard import settings  # noqa: PLC0415 - lazy: fast CLI start

    cli: dict[str, tuple[str, str]] = {}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or name not in settings.BY_NAME:
            raise UsageError(
                f"--set {item!r}: expected NAME=VALUE with NAME one of the settings 'buildyard config' lists"
            )
        cli[name] = (f"--set {name}", value)
    current = settings.load(project_dir(ctx), cli=cli)
    if as_json:
        print_json(
            [
                {
                    "name": s.name,
                    "env": s.env,
                    "value": current.shown(s.name) or None,
                    "source": current.origins[s.name].source.value,
                    "where": current.origins[s.name].where or None,
                    "form": s.form,
                    "default": s.default,
                    "in_file": s.in_file,
                    "secret": s.secret,
                    "description": s.help,
                }
                for s in settings.SETTINGS
            ]
        )
        return
    from buildyard.termtext import safe_text  # noqa: PLC0415

    rows = [
        (
            s.name,
            current.shown(s.name) or _unset(s.default, current.origins[s.name]),
            str(current.origins[s.name]),
        )
        for s in settings.SETTINGS
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for name, value, origin in rows:
        click.echo(safe_text(f"{name:<{widths[0]}}  {value:<{widths[1]}}  {origin}"))


def _unset(default: str, origin: Origin) -> str:
    """What an unset value shows: its default in parentheses, or ``(none)`` when set to nothing."""
    return f"({default})" if origin.source == "default" else "(none)"
