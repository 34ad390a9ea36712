"""``python -m buildyard.cli.daemon_server SOCKET``: the warm daemon that serves this CLI's commands.

The daemon (:mod:`buildyard.daemon.server`) is generic: it forks a child per command and calls the
function it was given. This module composes it with the CLI — :func:`buildyard.cli.run_cli` as the
command and the CLI's hot modules imported before the first fork — so the daemon never imports the
CLI (the faces form no import cycle).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from buildyard import settings
from buildyard.cli import run_cli
from buildyard.daemon.server import main as serve
from buildyard.settings import SettingsError

#: Imported before the first fork, so children start warm (the modules of the served commands).
PRELOAD = (
    "click",
    "buildyard.cli.app",
    "buildyard.cli.run",
    "buildyard.cli.history",
    "buildyard.cli.render",
    "buildyard.engine.runner",
    "buildyard.engine.caching",
    "buildyard.engine.gating",
    "buildyard.engine.local",
    "buildyard.cache",
    "buildyard.store.history",
    "sqlalchemy.dialects.sqlite.pysqlite",
    "rich.console",
    "rich.live",
    "rich.table",
)


def main(argv: list[str]) -> int:
    """Serve the CLI on the socket ``argv[0]`` until idle for ``BUILDYARD_DAEMON_IDLE`` seconds."""
    user = settings.user_file(os.environ)
    try:  # the daemon serves every project: the environment and the user's file only
        idle = settings.resolve(Path("/"), os.environ, [user] if user else []).daemon_idle
    except SettingsError as exc:
        sys.stderr.write(f"buildyard daemon: {exc}\n")
        return 2
    return serve(argv, run=run_cli, modules=PRELOAD, idle=idle)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
