"""Options of the commands that can ask a running buildyard server (cheap to import: no HTTP client)."""

from __future__ import annotations

import click

server_option = click.option(
    "--server",
    "server_url",
    envvar="BUILDYARD_SERVER",
    metavar="URL",
    help="Ask this buildyard server instead of the local history (token in BUILDYARD_TOKEN).",
)
project_option = click.option(
    "--project", "project_name", help="With --server: the project (needed when it serves several)."
)
