"""``buildyard daemon start|stop|status``: the warm process that serves commands (see buildyard.daemon)."""

from __future__ import annotations

import json
import marshal
import os
import time

import click

from buildyard.cli import DAEMON_SERVER
from buildyard.daemon.client import connect, private_dir, read_all, send_message, socket_path, start_daemon
from buildyard.errors import UserError


@click.group()
def app() -> None:
    """The warm daemon: imports once, forks a fresh buildyard process per command."""


def _status() -> dict[str, object] | None:
    return _control("status")


def _control(command: str) -> dict[str, object] | None:
    path = socket_path()
    sock = connect(path) if os.path.exists(path) else None  # noqa: PTH110
    if sock is None:
        return None
    try:
        send_message(sock, {"control": command})
        reply = read_all(sock)
    except OSError:
        return None
    finally:
        sock.close()
    status = marshal.loads(reply) if reply else None  # noqa: S302 - our own daemon, private socket
    return status if isinstance(status, dict) else None


@app.command()
@click.option("--wait", "wait_s", type=float, default=10.0, show_default=True, help="Seconds to wait for it.")
def start(wait_s: float) -> None:
    """Start the daemon (no-op when one is running)."""
    status = _status()
    if status is None:
        path = socket_path()
        folder = os.path.dirname(path)  # noqa: PTH120
        if not private_dir(folder):
            raise UserError(f"{folder}: not a private directory of this user (set BUILDYARD_DAEMON_DIR)")
        if not start_daemon(path, DAEMON_SERVER):
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
    info = _control("stop")
    if info is None:
        click.echo("no daemon running")
        return
    click.echo(f"daemon stopped (pid {info['pid']})")


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
