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
    "--scheduler",
    required=True,
    metavar="URL",
    help="The scheduler: tls://HOST:PORT (with --certs), or tcp://127.0.0.1:PORT on this machine.",
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
@click.option(
    "--cache-size",
    default="10G",
    show_default=True,
    metavar="SIZE",
    help="Limit of the local blob cache (least recently used blobs evicted first; 0: none).",
)
@click.option(
    "--certs",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of 'cluster certs': speak mutual TLS only (required off loopback).",
)
@click.option(
    "--dashboard-address",
    default="127.0.0.1:0",
    show_default=True,
    help="Where Dask's dashboard (plain HTTP) listens.",
)
def agent(
    scheduler: str,
    labels: str,
    resources: str,
    slots: int,
    work_dir: Path,
    host: str,
    name: str | None,
    cache_size: str,
    certs: Path | None,
    dashboard_address: str,
) -> None:
    """Start an agent (a Dask worker running buildyard jobs) for the scheduler."""
    require_extra("dask", "buildyard agent")
    from buildyard.dask.certs import load_tls  # noqa: PLC0415
    from buildyard.dask.cluster import (  # noqa: PLC0415
        agent_argv,
        agent_env,
        parse_labels,
        parse_resources,
        parse_size,
    )
    from buildyard.dask.executor import scheduler_address  # noqa: PLC0415

    tls = load_tls(certs, "agent") if certs is not None else None
    argv = agent_argv(
        # with certificates, a bare HOST:PORT means the TLS scheduler there
        scheduler_address(scheduler if tls is None or "://" in scheduler else f"tls://{scheduler}"),
        work_dir=work_dir.resolve(),
        labels=parse_labels(labels),
        resources=parse_resources(resources),
        slots=slots,
        host=host,
        name=name,
        tls=tls,
        dashboard=dashboard_address,
    )
    work_dir.mkdir(parents=True, exist_ok=True)
    env = agent_env(work_dir.resolve(), tls=tls is not None, cache_size=int(parse_size(cache_size)))
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)  # noqa: S606 - the agent is this process: signals reach the worker


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
@click.option(
    "--certs",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of 'cluster certs': speak mutual TLS only (required off loopback).",
)
@click.option(
    "--dashboard-address",
    default="127.0.0.1:0",
    show_default=True,
    help="Where Dask's dashboard (plain HTTP) listens.",
)
def start(
    host: str,
    port: int,
    agents: int,
    heartbeat_timeout: float,
    work_dir: Path,
    certs: Path | None,
    dashboard_address: str,
) -> int:
    """Start a scheduler (and local agents) until interrupted."""
    require_extra("dask", "buildyard cluster start")
    from buildyard.dask.cluster import LocalCluster  # noqa: PLC0415

    cluster = LocalCluster(
        work_dir.resolve(),
        host=host,
        port=port,
        agents=agents,
        heartbeat_timeout=heartbeat_timeout,
        certs=certs.resolve() if certs is not None else None,
        dashboard=dashboard_address,
    )

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM as Ctrl-C: the scheduler and agents are stopped, never orphaned

    signal.signal(signal.SIGTERM, stop)
    try:
        address = cluster.start()
        target = address if address.startswith("tls://") else f"dask://{address.removeprefix('tcp://')}"
        click.echo(f"scheduler {address}: buildyard run --executor {target}")
        return cluster.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        cluster.stop()


@app.command()
@click.option(
    "--scheduler", required=True, metavar="URL", help="The scheduler: tls://HOST:PORT or 127.0.0.1:PORT."
)
@click.option(
    "--certs",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of 'cluster certs': the client certificate of a TLS cluster.",
)
@json_option
def status(scheduler: str, certs: Path | None, as_json: bool) -> None:
    """List the agents: labels, resources, running jobs and free slots."""
    require_extra("dask", "buildyard cluster status")
    from buildyard.dask.certs import load_tls  # noqa: PLC0415
    from buildyard.dask.cluster import cluster_status  # noqa: PLC0415

    agents = cluster_status(scheduler, tls=load_tls(certs, "client") if certs is not None else None)
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


@app.command()
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write the CA and the certificates into (must not hold a CA yet).",
)
@click.option(
    "--hosts",
    default="127.0.0.1,localhost",
    show_default=True,
    metavar="H1,H2",
    help="Names and addresses the certificates are made for.",
)
def certs(out: Path, hosts: str) -> None:
    """Make the cluster's CA and the scheduler's, agents' and clients' certificates."""
    from buildyard.dask.certs import generate  # noqa: PLC0415

    names = tuple(h.strip() for h in hosts.split(",") if h.strip())
    for path in generate(out, names):
        click.echo(str(path))
    click.echo(
        f"scheduler: cluster start --certs {out}; agents: agent --certs DIR (ca.pem, agent.pem, agent.key); "
        f"orchestrator: BUILDYARD_CLUSTER_CERTS={out} (ca.pem, client.pem, client.key)"
    )
