"""``buildyard daemon start|stop|status``: the warm process that serves commands (see buildyard.daemon)."""

from __future__ import annotations

import json
import time

import click

from buildyard.daemon.client import connect, private_dir, read_lines, send_message, socket_path, start_daemon
from buildyard.errors import UserError


@click.group()
def app() -> None:
    """The warm daemon: imports once, forks a fresh buildyard process per command."""


def _status() -> dict[str, object] | None:
    path = socket_path()
    sock = connect(path) if path.exists() else None
    if sock is None:
        return None
    with sock:
        send_message(sock, {"control": "status"})
        replies = read_lines(sock)
    return replies[0] if replies else None


@app.command()
@click.option("--wait", "wait_s", type=float, default=10.0, show_default=True, help="Seconds to wait for it.")
def start(wait_s: float) -> None:
    """Start the daemon (no-op when one is running)."""
    status = _status()
    if status is None:
        path = socket_path()
        if not private_dir(path.parent):
            raise UserError(f"{path.parent}: not a private directory of this user (set BUILDYARD_DAEMON_DIR)")
        if start_daemon(path) is None:
            raise UserError("cannot start the daemon (see BUILDYARD_DAEMON_DIR)")
        deadline = time.monotonic() + wait_s
        while status is None and time.monotonic() < deadline:
            time.sleep(0.05)
            status = _status()
        if status is None:
            raise UserError(f"the daemon did not answer within {wait_s:g}s")
    click.echo(f"daemon running: pid {status['pid']}, socket {status['socket']}")


@app.command()
def stop() -> None:
    """Stop the daemon (commands already running finish)."""
    path = socket_path()
    sock = connect(path) if path.exists() else None
    if sock is None:
        click.echo("no daemon running")
        return
    with sock:
        send_message(sock, {"control": "stop"})
        replies = read_lines(sock)
    pid = replies[0]["pid"] if replies else "?"
    click.echo(f"daemon stopped (pid {pid})")


@app.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Whether a daemon is running, since when, how many commands it served."""
    info = _status()
    if as_json:
        click.echo(json.dumps({"running": info is not None, **(info or {})}))
        return
    if info is None:
        click.echo("no daemon running")
        return
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(str(info["started"]))))
    click.echo(
        f"daemon pid {info['pid']} since {started}: {info['served']} commands served, "
        f"{info['commands_running']} running; socket {info['socket']}"
    )
