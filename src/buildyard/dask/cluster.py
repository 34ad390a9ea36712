"""Starting and inspecting a cluster: the Dask scheduler, agents (Dask workers) and their labels.

An agent is a ``dask worker`` (no nanny: killing the agent kills its worker) with one thread per
slot, its work directory as Dask's local directory, and buildyard's labels and resources as Dask
worker resources: ``cpus``/``mem`` are counted, a label ``L`` is the resource ``label-L`` with a
capacity no job exhausts. Every listening socket binds to the given host, dashboards included.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildyard.dask.certs import ClusterTLS, load_tls
from buildyard.errors import UsageError

#: Capacity of a label resource: any number of jobs wanting the label may share the agent.
LABEL_CAPACITY = 1_000_000
LABEL_PREFIX = "label-"
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)i?B?$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> float:
    """``16G`` → bytes (powers of 1024); a plain number is bytes."""
    match = _SIZE.match(text.strip())
    if match is None:
        raise UsageError(f"{text!r} is not a size: use e.g. 512M or 16G")
    return float(match.group(1)) * _UNITS[match.group(2).upper()]


def parse_labels(text: str) -> tuple[str, ...]:
    """``linux,gpu`` → ``("gpu", "linux")`` (each a plain word)."""
    labels = sorted({part.strip() for part in text.split(",") if part.strip()})
    for label in labels:
        if not _LABEL.match(label):
            raise UsageError(f"label {label!r}: use letters, digits, '.', '_' and '-'")
    return tuple(labels)


def parse_resources(text: str) -> dict[str, float]:
    """``cpus=8,mem=16G`` → ``{"cpus": 8.0, "mem": 17179869184.0}``."""
    resources: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        if not sep or name not in ("cpus", "mem", "gpu"):
            raise UsageError(f"resource {part!r}: use cpus=N, mem=SIZE or gpu=N, comma-separated")
        resources[name] = parse_size(value) if name == "mem" else float(value)
    return resources


def require_loopback(host: str, what: str) -> None:
    """``UsageError`` unless ``host`` is a loopback address or ``localhost`` (plain TCP stays here)."""
    bare = host.strip("[]")
    try:
        loopback = bare == "localhost" or ipaddress.ip_address(bare).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(
            f"{what}: plain TCP is allowed on loopback only (127.0.0.1, ::1, localhost); "
            "use tls://HOST:PORT with the certificates of 'buildyard cluster certs'"
        )


def label_resources(labels: tuple[str, ...]) -> dict[str, float]:
    """The Dask resources standing for ``labels``."""
    return {f"{LABEL_PREFIX}{label}": float(LABEL_CAPACITY) for label in labels}


def agent_argv(
    scheduler: str,
    *,
    work_dir: Path,
    labels: tuple[str, ...] = (),
    resources: dict[str, float] | None = None,
    slots: int = 1,
    host: str = "127.0.0.1",
    name: str | None = None,
    tls: ClusterTLS | None = None,
    dashboard: str = "127.0.0.1:0",
) -> list[str]:
    """The command line of one agent (plain TCP only on loopback; with ``tls``, mutual TLS only)."""
    if slots < 1:
        raise UsageError("--slots must be at least 1")
    if tls is None:
        require_loopback(host, f"agent on {host}")
    elif not scheduler.startswith("tls://"):
        raise UsageError(f"scheduler {scheduler}: an agent with certificates connects to tls://HOST:PORT")
    # cpus are counted once any agent declares them (a job asks cpus=1 by default): an agent that
    # declares none offers one per slot, so it still takes default jobs beside agents that do.
    merged = {"cpus": float(slots), **(resources or {}), **label_resources(labels)}
    argv = [
        sys.executable, "-m", "dask", "worker", scheduler,
        "--no-nanny", "--nthreads", str(slots),
        "--local-directory", str(work_dir),
        "--host", host, "--dashboard-address", dashboard,
        "--death-timeout", "60",
    ]  # fmt: skip
    if tls is not None:
        argv += ["--protocol", "tls", *tls.argv()]
    if merged:
        argv += ["--resources", " ".join(f"{k}={v:g}" for k, v in sorted(merged.items()))]
    if name:
        argv += ["--name", name]
    return argv


def scheduler_argv(
    host: str = "127.0.0.1",
    port: int = 8786,
    *,
    scheduler_file: Path | None = None,
    tls: ClusterTLS | None = None,
    dashboard: str = "127.0.0.1:0",
) -> list[str]:
    """The command line of the scheduler (its dashboard, plain HTTP, on ``dashboard``: loopback unless
    configured). Plain TCP only on loopback; with ``tls``, mutual TLS only."""
    if tls is None:
        require_loopback(host, f"scheduler on {host}")
    argv = [
        sys.executable, "-m", "dask", "scheduler",
        "--host", host, "--port", str(port), "--dashboard-address", dashboard,
    ]  # fmt: skip
    if tls is not None:
        argv += ["--protocol", "tls", *tls.argv()]
    if scheduler_file is not None:
        argv += ["--scheduler-file", str(scheduler_file)]
    return argv


#: Seconds without a heartbeat after which the scheduler gives an agent up (a frozen machine, a
#: SIGSTOPped process) and re-runs its jobs elsewhere; Dask's own default is 5 minutes.
HEARTBEAT_TIMEOUT_S = 60.0


def scheduler_env(heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S, *, tls: bool = False) -> dict[str, str]:
    """Environment of the scheduler process: ``os.environ`` plus Dask's worker time-to-live (and, on a
    TLS cluster, Dask's refusal of any unencrypted connection)."""
    import os  # noqa: PLC0415

    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL": f"{heartbeat_timeout:g}s"}
    if tls:
        env[REQUIRE_ENCRYPTION_ENV] = "True"
    return env


#: Dask config variable of the agent's blob cache limit (bytes; 0: none), read by ``agent.cache_limit``.
CACHE_SIZE_ENV = "DASK_BUILDYARD__AGENT_CACHE_SIZE"


#: Dask config variable of the agent's own directory (workspaces, blob cache), kept across restarts.
AGENT_DIR_ENV = "DASK_BUILDYARD__AGENT_DIR"


def agent_env(
    work_dir: Path | None = None, *, tls: bool = False, cache_size: int | None = None
) -> dict[str, str]:
    """Environment of an agent process: ``os.environ`` plus its work directory (Dask's own directory
    under it is new at every start: the blob cache lives beside it), its blob cache limit (None: the
    default; 0: no limit) and, on a TLS cluster, the refusal of unencrypted connections."""
    import os  # noqa: PLC0415

    env = dict(os.environ)
    if work_dir is not None:
        env[AGENT_DIR_ENV] = str(work_dir / "buildyard")
    if cache_size is not None:
        env[CACHE_SIZE_ENV] = str(cache_size)
    if tls:
        env[REQUIRE_ENCRYPTION_ENV] = "True"
    return env


#: Dask's setting refusing every unencrypted connection (set for the processes of a TLS cluster).
REQUIRE_ENCRYPTION_ENV = "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"


def wait_for_scheduler(scheduler_file: Path, process: subprocess.Popen[bytes], timeout: float = 30.0) -> str:
    """The address the scheduler writes to ``scheduler_file`` once it listens."""
    import json  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UsageError(f"the Dask scheduler exited with code {process.returncode}")
        try:
            return str(json.loads(scheduler_file.read_text())["address"])
        except (OSError, ValueError, KeyError):
            time.sleep(0.05)
    raise UsageError(f"the Dask scheduler did not start within {timeout:g}s")


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """One agent as the scheduler sees it."""

    address: str
    name: str
    labels: tuple[str, ...]
    resources: dict[str, float]
    slots: int
    running: int

    @property
    def free_slots(self) -> int:
        """Slots not running a job."""
        return max(0, self.slots - self.running)

    def capacity(self, resource: str) -> float:
        """How much of ``resource`` (a Dask resource name, labels included) the agent has."""
        if resource.startswith(LABEL_PREFIX):
            return float(LABEL_CAPACITY) if resource.removeprefix(LABEL_PREFIX) in self.labels else 0.0
        return self.resources.get(resource, 0.0)

    def to_dict(self) -> dict[str, object]:
        """The JSON form (``cluster status --json``)."""
        return {
            "address": self.address,
            "name": self.name,
            "labels": list(self.labels),
            "resources": self.resources,
            "slots": self.slots,
            "running": self.running,
            "free_slots": self.free_slots,
        }


def agents_of(info: dict[str, object]) -> list[AgentInfo]:
    """The agents in a ``Client.scheduler_info()`` answer."""
    workers = info.get("workers", {})
    agents: list[AgentInfo] = []
    for address, raw in sorted(workers.items() if isinstance(workers, dict) else []):
        resources = {str(k): float(v) for k, v in (raw.get("resources") or {}).items()}
        metrics = raw.get("metrics") or {}
        agents.append(
            AgentInfo(
                address=str(address),
                name=str(raw.get("name", "")),
                labels=tuple(
                    sorted(k.removeprefix(LABEL_PREFIX) for k in resources if k.startswith(LABEL_PREFIX))
                ),
                resources={k: v for k, v in resources.items() if not k.startswith(LABEL_PREFIX)},
                slots=int(raw.get("nthreads", 1)),
                running=int(metrics.get("executing", 0)) if isinstance(metrics, dict) else 0,
            )
        )
    return agents


def cluster_status(address: str, timeout: float = 10.0, *, tls: ClusterTLS | None = None) -> list[AgentInfo]:
    """The agents the scheduler at ``address`` (``HOST:PORT`` or a URL) knows (``tls``: client files)."""
    from buildyard.dask.executor import scheduler_address  # noqa: PLC0415
    from buildyard.dask.wire import distributed  # noqa: PLC0415

    url = scheduler_address(address)
    options: dict[str, Any] = {"security": tls.security("client")} if tls is not None else {}
    try:
        client = distributed().Client(url, set_as_default=False, timeout=f"{timeout:g}s", **options)
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"cannot reach the Dask scheduler {url}: {exc}") from None
    try:
        return agents_of(client.scheduler_info(n_workers=-1))
    finally:
        client.close()


class LocalCluster:
    """A scheduler and ``agents`` local agents as child processes (``buildyard cluster start``)."""

    def __init__(
        self,
        work_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 8786,
        agents: int = 0,
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S,
        certs: Path | None = None,
        dashboard: str = "127.0.0.1:0",
    ) -> None:
        self.heartbeat_timeout = heartbeat_timeout
        self.certs = certs
        self.dashboard = dashboard
        self.work_dir = work_dir
        self.host = host
        self.port = port
        self.agent_count = agents
        self.processes: list[subprocess.Popen[bytes]] = []
        self.address = ""

    def start(self) -> str:
        """Start everything; the scheduler's address."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        scheduler_file = self.work_dir / "scheduler.json"
        scheduler_file.unlink(missing_ok=True)
        tls = load_tls(self.certs, "scheduler") if self.certs is not None else None
        agent_tls = load_tls(self.certs, "agent") if self.certs is not None else None
        scheduler = subprocess.Popen(
            scheduler_argv(
                self.host, self.port, scheduler_file=scheduler_file, tls=tls, dashboard=self.dashboard
            ),
            env=scheduler_env(self.heartbeat_timeout, tls=tls is not None),
        )
        self.processes.append(scheduler)
        self.address = wait_for_scheduler(scheduler_file, scheduler)
        for index in range(self.agent_count):
            work = self.work_dir / f"agent-{index + 1}"
            work.mkdir(exist_ok=True)
            argv = agent_argv(
                self.address, work_dir=work, slots=1, host=self.host, name=f"agent-{index + 1}", tls=agent_tls
            )
            self.processes.append(subprocess.Popen(argv, env=agent_env(work, tls=agent_tls is not None)))
        return self.address

    def wait(self) -> int:
        """Block until a process of the cluster exits; its exit code."""
        while True:
            for process in self.processes:
                code = process.poll()
                if code is not None:
                    return code
            time.sleep(0.2)

    def stop(self) -> None:
        """Terminate the agents, then the scheduler (SIGKILL after 5 s)."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
