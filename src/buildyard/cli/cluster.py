"""``buildyard agent`` and ``buildyard cluster``: run jobs on several machines through Dask."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from buildyard.cli._common import json_option, print_json
from buildyard.extras import require_extra


@click.command()
@click.option(
    "--scheduler", required=True, metavar="URL", help="The scheduler: tcp://HOST:PORT (or HOST:PORT)."
)
@click.option("--labels", default="", metavar="L1,L2", help="Labels jobs select with runs_on.")
@click.option(
    "--resources", default="", metavar="cpus=N,mem=SIZE", help="What jobs' resources: count against."
)
@click.option("--slots", type=int, default=1, show_default=True, help="Jobs run at once.")
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("buildyard-agent"),
    show_default=True,
    help="Workspaces and the blob cache.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface the agent listens on.")
@click.option("--name", default=None, help="The agent's name (default: its address).")
def agent(
    scheduler: str, labels: str, resources: str, slots: int, work_dir: Path, host: str, name: str | None
) -> None:
    """Start an agent (a Dask worker running buildyard jobs) for the scheduler."""
    require_extra("dask", "buildyard agent")
    from buildyard.dask.cluster import agent_argv, parse_labels, parse_resources  # noqa: PLC0415
    from buildyard.dask.executor import scheduler_address  # noqa: PLC0415

    argv = agent_argv(
        scheduler_address(scheduler),
        work_dir=work_dir.resolve(),
        labels=parse_labels(labels),
        resources=parse_resources(resources),
        slots=slots,
        host=host,
        name=name,
    )
    work_dir.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    os.execv(sys.executable, argv)  # noqa: S606 - the agent is this process: signals reach the worker


@click.group(name="cluster")
def app() -> None:
    """A Dask cluster of agents: start one here, see its agents."""


@app.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=8786, show_default=True, help="Scheduler port (0: a free one).")
@click.option("--agents", type=int, default=0, show_default=True, help="Local agents to start too.")
@click.option(
    "--heartbeat-timeout",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds without news after which an agent is given up and its jobs re-run elsewhere.",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".buildyard/cluster"),
    show_default=True,
    help="Scheduler file and the local agents' directories.",
)
def start(host: str, port: int, agents: int, heartbeat_timeout: float, work_dir: Path) -> int:
    """Start a scheduler (and local agents) until interrupted."""
    require_extra("dask", "buildyard cluster start")
    from buildyard.dask.cluster import LocalCluster  # noqa: PLC0415

    cluster = LocalCluster(
        work_dir.resolve(), host=host, port=port, agents=agents, heartbeat_timeout=heartbeat_timeout
    )

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM as Ctrl-C: the scheduler and agents are stopped, never orphaned

    signal.signal(signal.SIGTERM, stop)
    try:
        address = cluster.start()
        click.echo(f"scheduler {address}: buildyard run --executor dask://{address.removeprefix('tcp://')}")
        return cluster.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        cluster.stop()


@app.command()
@click.option(
    "--scheduler", required=True, metavar="URL", help="The scheduler: tcp://HOST:PORT (or HOST:PORT)."
)
@json_option
def status(scheduler: str, as_json: bool) -> None:
    """List the agents: labels, resources, running jobs and free slots."""
    require_extra("dask", "buildyard cluster status")
    from buildyard.dask.cluster import cluster_status  # noqa: PLC0415

    agents = cluster_status(scheduler)
    if as_json:
        print_json([a.to_dict() for a in agents])
        return
    if not agents:
        click.echo("no agents")
    for a in agents:
        res = ",".join(f"{k}={v:g}" for k, v in sorted(a.resources.items())) or "-"
        click.echo(
            f"{a.name}  {a.address}  labels={','.join(a.labels) or '-'}  resources={res}  "
            f"running={a.running}  free={a.free_slots}/{a.slots}"
        )
