"""``buildyard serve`` and the server's admin and client commands: ``user``, ``token``, ``secrets``,
``trigger``.

Admin commands act on the server's state given the same ``--config``/``-C`` (and ``--data-dir``,
``--db``) as ``serve``; ``trigger`` queues a run there, or with ``--server URL`` asks a running server
(token in ``BUILDYARD_TOKEN``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from buildyard.cli._common import json_option, print_json, project_dir
from buildyard.errors import UsageError

if TYPE_CHECKING:
    from buildyard.server.config import ServerConfig
    from buildyard.server.state import ServerState

F = TypeVar("F", bound=Callable[..., Any])


def state_options(func: F) -> F:
    """``--config``, ``--data-dir``, ``--db``: which server state a command acts on."""
    func = click.option(
        "--db",
        "state_db",
        envvar="BUILDYARD_SERVER_DB",
        metavar="URL",
        help="Server state database URL (e.g. postgresql+psycopg://…; default: SQLite in the data dir).",
    )(func)
    func = click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Server state directory (default: .buildyard/server of the project, or beside --config).",
    )(func)
    return click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="server.yml listing several projects (default: the project of -C / the current directory).",
    )(func)


def load_server_config(
    ctx: click.Context,
    config_file: Path | None,
    data_dir: Path | None,
    state_db: str | None,
    runners: int = 1,
) -> ServerConfig:
    """The server configuration chosen by ``--config`` or ``-C``."""
    from buildyard.server.config import load_config, single_project  # noqa: PLC0415

    if config_file is not None:
        return load_config(config_file, data_dir=data_dir, db_url=state_db, runners=runners)
    return single_project(project_dir(ctx), data_dir=data_dir, db_url=state_db, runners=runners)


def _open_state(
    ctx: click.Context, config_file: Path | None, data_dir: Path | None, state_db: str | None
) -> ServerState:
    from buildyard.server.state import ServerState  # noqa: PLC0415

    return ServerState(load_server_config(ctx, config_file, data_dir, state_db))


def _local_actor() -> str:
    return f"cli:{getpass.getuser()}"


@contextlib.contextmanager
def _state(
    ctx: click.Context, config_file: Path | None, data_dir: Path | None, state_db: str | None
) -> Iterator[ServerState]:
    """The server state of these options, closed after use."""
    state = _open_state(ctx, config_file, data_dir, state_db)
    try:
        yield state
    finally:
        state.close()


def _audit(state: ServerState, action: str, obj: str) -> None:
    """Record an admin command's action in the audit log (as the local user)."""
    state.audit.record(actor=_local_actor(), action=action, obj=obj, address="local")


@click.command()
@state_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port to bind.")
@click.option(
    "--runners", type=click.IntRange(min=1), default=1, show_default=True, help="Runs executed at once."
)
@click.option(
    "--metrics-refresh",
    type=click.FloatRange(min=0),
    default=15.0,
    show_default=True,
    help="Seconds /metrics reuses its last scan of the histories while a new one runs (0: scan each time).",
)
@click.option(
    "--schedule-interval",
    type=click.FloatRange(min=0.1),
    default=20.0,
    show_default=True,
    help="Seconds between two looks at the projects' on.schedule.",
)
@click.option(
    "--frozen-clock",
    metavar="ISO-TIME",
    hidden=True,
    help="Testing only: schedules see this instant as now (e.g. 2027-03-28T01:30:00+00:00).",
)
@click.pass_context
def serve(
    ctx: click.Context,
    config_file: Path | None,
    data_dir: Path | None,
    state_db: str | None,
    host: str,
    port: int,
    runners: int,
    metrics_refresh: float,
    schedule_interval: float,
    frozen_clock: str | None,
) -> None:
    """Serve projects: run queue, runners, REST API, dashboard, /metrics; prints the URL.

    Binding an address other than loopback needs authentication configured first
    ('buildyard user create NAME --role admin' or 'buildyard token create').
    """
    import gc  # noqa: PLC0415
    import importlib  # noqa: PLC0415
    import socket  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415

    from buildyard.server.app import create_app, is_loopback  # noqa: PLC0415
    from buildyard.server.background import NotifyWorkers, ScheduleTicker  # noqa: PLC0415
    from buildyard.server.polling import RepoPoller  # noqa: PLC0415
    from buildyard.server.runners import RunnerPool  # noqa: PLC0415
    from buildyard.server.state import ServerState  # noqa: PLC0415

    config = load_server_config(ctx, config_file, data_dir, state_db, runners)
    config = replace(config, metrics_refresh=metrics_refresh)
    state = ServerState(config)
    try:
        if not is_loopback(host) and not state.auth.configured():
            raise UsageError(
                f"refusing to bind {host} without authentication: create a user or token first "
                "('buildyard user create NAME --role admin'), or bind 127.0.0.1"
            )
        pool = RunnerPool(state, runners)
        clock = _frozen(frozen_clock) if frozen_clock else None
        schedules = ScheduleTicker(state, interval=schedule_interval, on_queued=pool.wake)
        if clock is not None:
            schedules.clock = clock
        poller = RepoPoller(state, on_queued=pool.wake)  # projects with poll: in server.yml
        app = create_app(state, pool, [schedules, NotifyWorkers(state), poller])
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # inherited by accepted connections: without it a keep-alive client waits ~40 ms per response
        # (the headers and body go out in two writes; Nagle holds the second for the delayed ACK)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise UsageError(
                f"cannot listen on {host}:{port}: {exc.strerror} (give another --port)"
            ) from None
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        names = ", ".join(p.name for p in config.projects)
        print(
            f"buildyard server: http://{shown}:{bound}/ ({names}; {runners} runner{'s' * (runners > 1)})",
            flush=True,
        )
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
        # what the runners and hooks import on first use is imported now: an import holds the GIL
        # for its whole length, and the first run's imports stalled the answers given meanwhile
        for module in _FIRST_USE:
            importlib.import_module(module)

        # what start-up made lives as long as the server: out of the collector's sight, a full
        # collection no longer walks it (each took long enough to show in the answers' p99)
        gc.collect()
        gc.freeze()
        server.run(sockets=[sock])
    finally:
        state.close()


#: Modules a runner or a hook imports on first use (imported by ``serve`` before it answers).
_FIRST_USE = (
    "buildyard.engine.liveness",
    "buildyard.server.concurrency",
    "buildyard.spec.load",
    "buildyard.triggers.match",
)


def _frozen(text: str) -> Callable[[], dt.datetime]:
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--frozen-clock: '{text:.40}' is not an ISO time") from None
    if at.tzinfo is None:
        raise UsageError("--frozen-clock: give a time zone (e.g. +00:00)")
    return lambda: at


# --- users ------------------------------------------------------------------------------------------


@click.group(name="user")
def user_app() -> None:
    """Server users (log in to the dashboard): create, list, rm."""


@user_app.command(name="create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["viewer", "operator", "maintainer", "admin"]))
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin (else prompt twice).")
@click.option("--replace", is_flag=True, help="Reset the role and password of an existing user.")
@state_options
@click.pass_context
def user_create(
    ctx: click.Context,
    name: str,
    role: str,
    password_stdin: bool,
    replace: bool,
    config_file: Path | None,
    data_dir: Path | None,
    state_db: str | None,
) -> None:
    """Create user NAME with ROLE (password from a prompt or --password-stdin)."""
    from buildyard.server.auth import Role  # noqa: PLC0415

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    with _state(ctx, config_file, data_dir, state_db) as state:
        state.auth.create_user(name, Role.parse(role), password, replace=replace)
        _audit(state, "user.create", f"{name} ({role})")
    print(f"user {name} ({role}) {'updated' if replace else 'created'}")


@user_app.command(name="list")
@state_options
@json_option
@click.pass_context
def user_list(
    ctx: click.Context, config_file: Path | None, data_dir: Path | None, state_db: str | None, as_json: bool
) -> None:
    """List users and roles."""
    with _state(ctx, config_file, data_dir, state_db) as state:
        rows = state.auth.list_users()
    if as_json:
        print_json([{"name": n, "role": r, "disabled": d} for n, r, d in rows])
        return
    for name, role, disabled in rows:
        print(f"{name:<30} {role:<10}{'  (disabled)' if disabled else ''}")


@user_app.command(name="rm")
@click.argument("name")
@state_options
@click.pass_context
def user_rm(
    ctx: click.Context, name: str, config_file: Path | None, data_dir: Path | None, state_db: str | None
) -> None:
    """Remove user NAME (and end its sessions)."""
    with _state(ctx, config_file, data_dir, state_db) as state:
        state.auth.delete_user(name)
        _audit(state, "user.rm", name)
    print(f"user {name} removed")


# --- tokens -----------------------------------------------------------------------------------------


@click.group(name="token")
def token_app() -> None:
    """API tokens (Authorization: Bearer): create, list, revoke."""


@token_app.command(name="create")
@click.option("--name", required=True, help="What the token is for (shown in lists and the audit log).")
@click.option("--role", required=True, type=click.Choice(["viewer", "operator", "maintainer", "admin"]))
@state_options
@click.pass_context
def token_create(
    ctx: click.Context,
    name: str,
    role: str,
    config_file: Path | None,
    data_dir: Path | None,
    state_db: str | None,
) -> None:
    """Create a token; it is printed once (only a hash is kept)."""
    from buildyard.server.auth import Role  # noqa: PLC0415

    with _state(ctx, config_file, data_dir, state_db) as state:
        value, info = state.auth.create_token(name, Role.parse(role), created_by=_local_actor())
        _audit(state, "token.create", f"{name} ({role})")
    print(value)
    print(
        f"token {info.id} '{name}' ({role}): shown once; keep it (e.g. in BUILDYARD_TOKEN)", file=sys.stderr
    )


@token_app.command(name="list")
@state_options
@json_option
@click.pass_context
def token_list(
    ctx: click.Context, config_file: Path | None, data_dir: Path | None, state_db: str | None, as_json: bool
) -> None:
    """List tokens (never their values)."""
    with _state(ctx, config_file, data_dir, state_db) as state:
        rows = state.auth.list_tokens()
    if as_json:
        print_json(
            [{"id": t.id, "name": t.name, "role": t.role, "revoked": t.revoked_at is not None} for t in rows]
        )
        return
    for t in rows:
        print(f"{t.id}  {t.name:<30} {t.role:<10}{'  (revoked)' if t.revoked_at else ''}")


@token_app.command(name="revoke")
@click.argument("token")
@state_options
@click.pass_context
def token_revoke(
    ctx: click.Context, token: str, config_file: Path | None, data_dir: Path | None, state_db: str | None
) -> None:
    """Revoke TOKEN (its id or name)."""
    with _state(ctx, config_file, data_dir, state_db) as state:
        state.auth.revoke_token(token)
        _audit(state, "token.revoke", token)
    print(f"token {token} revoked")


# --- secrets ----------------------------------------------------------------------------------------


@click.group(name="secrets")
def secrets_app() -> None:
    """Project secrets kept by the server, encrypted: set, list, rm."""


def _project_name(state: ServerState, project: str | None) -> str:
    if project is None:
        if len(state.config.projects) > 1:
            raise UsageError("several projects are served: give --project NAME")
        return state.config.projects[0].name
    return state.project(project).name


project_option = click.option("--project", help="Project name (needed with several projects).")


@secrets_app.command(name="set")
@click.argument("name")
@project_option
@click.option("--value-stdin", is_flag=True, help="Read the value from stdin (else prompt, hidden).")
@state_options
@click.pass_context
def secrets_set(
    ctx: click.Context,
    name: str,
    project: str | None,
    value_stdin: bool,
    config_file: Path | None,
    data_dir: Path | None,
    state_db: str | None,
) -> None:
    """Set secret NAME of a project (the value is never shown again)."""
    value = sys.stdin.read().rstrip("\r\n") if value_stdin else click.prompt("value", hide_input=True)
    with _state(ctx, config_file, data_dir, state_db) as state:
        target = _project_name(state, project)
        state.secrets.set(target, name, value, actor=_local_actor())
        _audit(state, "secret.set", f"{target}/{name}")
    print(f"secret {name} of {target} set")


@secrets_app.command(name="list")
@project_option
@state_options
@json_option
@click.pass_context
def secrets_list(
    ctx: click.Context,
    project: str | None,
    config_file: Path | None,
    data_dir: Path | None,
    state_db: str | None,
    as_json: bool,
) -> None:
    """Names of a project's secrets (never values)."""
    with _state(ctx, config_file, data_dir, state_db) as state:
        rows = state.secrets.list(_project_name(state, project))
    if as_json:
        print_json([{"name": s.name, "updated_at": s.updated_at, "updated_by": s.updated_by} for s in rows])
        return
    for s in rows:
        print(f"{s.name:<40} set by {s.updated_by}")


@secrets_app.command(name="rm")
@click.argument("name")
@project_option
@state_options
@click.pass_context
def secrets_rm(
    ctx: click.Context,
    name: str,
    project: str | None,
    config_file: Path | None,
    data_dir: Path | None,
    state_db: str | None,
) -> None:
    """Delete secret NAME of a project."""
    with _state(ctx, config_file, data_dir, state_db) as state:
        target = _project_name(state, project)
        state.secrets.remove(target, name)
        _audit(state, "secret.rm", f"{target}/{name}")
    print(f"secret {name} of {target} removed")


@secrets_app.command(name="webhook")
@project_option
@click.option("--value-stdin", is_flag=True, help="Read the secret from stdin (else one is generated).")
@state_options
@click.pass_context
def secrets_webhook(
    ctx: click.Context,
    project: str | None,
    value_stdin: bool,
    config_file: Path | None,
    data_dir: Path | None,
    state_db: str | None,
) -> None:
    """Set the project's webhook secret (GitHub/generic HMAC key, GitLab token).

    Without --value-stdin a random secret is generated and printed once: paste it into the
    repository's webhook settings. It is never shown again.
    """
    import secrets as _random  # noqa: PLC0415

    value = sys.stdin.read().strip() if value_stdin else _random.token_urlsafe(32)
    with _state(ctx, config_file, data_dir, state_db) as state:
        target = _project_name(state, project)
        state.set_webhook_secret(target, value, actor=_local_actor())
        _audit(state, "webhook.secret", target)
    if not value_stdin:
        print(value)
    print(
        f"webhook secret of {target} set; deliveries go to /hooks/github|gitlab|generic/{target}",
        file=sys.stderr,
    )


# --- trigger ----------------------------------------------------------------------------------------


@click.command()
@project_option
@click.option("--branch", help="Branch (default: the project's default branch).")
@click.option("--sha", help="Commit (default: the head of the branch).")
@click.option("--event", help="Trigger event (default: manual with --input, else push).")
@click.option("--var", "var", multiple=True, metavar="KEY=VALUE", help="Set a pipeline variable.")
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="NAME=VALUE",
    help="An input of a manual run (checked against on.manual.inputs of the commit).",
)
@click.option(
    "--server", "server_url", envvar="BUILDYARD_SERVER", metavar="URL", help="Ask this running server."
)
@state_options
@json_option
@click.pass_context
def trigger(
    ctx: click.Context,
    project: str | None,
    branch: str | None,
    sha: str | None,
    event: str | None,
    var: tuple[str, ...],
    inputs: tuple[str, ...],
    server_url: str | None,
    config_file: Path | None,
    data_dir: Path | None,
    state_db: str | None,
    as_json: bool,
) -> None:
    """Queue a run on the server (its runners execute it).

    A manual run's inputs (--input NAME=VALUE) are checked against on.manual.inputs of the
    commit's buildyard.yml: types, choices, required ones; defaults fill the others.
    """
    from buildyard.cli.run import _parse_vars  # noqa: PLC0415
    from buildyard.triggers.inputs import parse_pairs  # noqa: PLC0415

    variables = _parse_vars(list(var))
    given = parse_pairs(list(inputs))
    event = event or ("manual" if given else "push")
    if server_url:
        from buildyard.cli.client import Client, quote  # noqa: PLC0415

        with Client(server_url) as client:
            name = project or client.only_project()
            body = {"branch": branch, "sha": sha, "event": event, "variables": variables, "inputs": given}
            entry = client.post(f"/projects/{quote(name)}/runs", body)["queued"]
    else:
        from buildyard.server.common import entry_json  # noqa: PLC0415

        with _state(ctx, config_file, data_dir, state_db) as state:
            name = _project_name(state, project)
            queued = state.trigger(
                name,
                requested_by=_local_actor(),
                branch=branch,
                sha=sha,
                event=event,
                variables=variables,
                inputs=given,
            )
            _audit(state, "run.trigger", f"{name}@{queued.branch}")
        entry = entry_json(queued)
    if as_json:
        print_json(entry)
        return
    print(f"queued {entry['id']} ({entry['project']} {entry['branch']} {entry['sha'][:12]})")
