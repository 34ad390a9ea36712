"""A real Dask cluster on 127.0.0.1 for the module: a scheduler and two agents, each a detached
process (so the per-test leak check does not count them) running from its own directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
#: The cluster's heartbeat timeout: a frozen agent is given up after this (Dask's default: 5 minutes).
HEARTBEAT_S = 4.0


def _detached(argv: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> int:
    """Start ``argv`` in its own session through a shell that exits at once: not our descendant."""
    quoted = " ".join("'" + a.replace("'", "'\\''") + "'" for a in argv)
    out = subprocess.run(
        ["sh", "-c", f"{quoted} >'{log}' 2>&1 </dev/null & echo $!"],
        cwd=cwd,
        env={**(env or os.environ), "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        check=True,
        start_new_session=True,
    )
    return int(out.stdout.strip())


@dataclass
class Cluster:
    """The scheduler's address, the agents' pids and work directories."""

    address: str
    root: Path
    scheduler_pid: int
    agents: dict[str, tuple[int, Path]] = field(default_factory=dict)
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The directory of ``cluster certs`` on a TLS cluster (the agents use its agent files).
    certs: Path | None = None

    def start_agent(
        self,
        name: str,
        *,
        labels: tuple[str, ...] = (),
        resources: dict[str, float] | None = None,
        slots: int = 2,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.specs[name] = {"labels": labels, "resources": resources, "slots": slots, "extra": extra}
        home = self.root / name
        work = home / "work"
        work.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "buildyard",
            "agent",
            "--scheduler",
            self.address,
            "--slots",
            str(slots),
        ]
        argv += ["--work-dir", str(work), "--name", name, "--labels", ",".join(labels)]
        argv += ["--resources", ",".join(f"{k}={v:g}" for k, v in (resources or {}).items())]
        if self.certs is not None:
            argv += ["--certs", str(self.certs)]
        argv += extra
        self.agents[name] = (_detached(argv, home, home / "agent.log"), work)

    def _security(self) -> dict[str, Any]:
        if self.certs is None:
            return {}
        from buildyard.dask.certs import load_tls

        return {"security": load_tls(self.certs, "client").security("client")}

    def wait_for(self, count: int) -> None:
        from distributed import Client

        with Client(self.address, set_as_default=False, timeout="20s", **self._security()) as client:
            client.wait_for_workers(count, timeout=60)

    def addresses(self) -> dict[str, str]:
        """Agent name → its address, as the scheduler sees them."""
        from distributed import Client

        with Client(self.address, set_as_default=False, timeout="20s", **self._security()) as client:
            workers = client.scheduler_info()["workers"]
        return {str(w["name"]): address for address, w in workers.items()}

    def restart_missing(self) -> None:
        """Start again the agents that died (a test killed one)."""
        for name, (pid, _work) in list(self.agents.items()):
            if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                spec = self.specs[name]
                self.start_agent(name, **spec)
        self.wait_for(len(self.agents))

    def kill(self, pid: int) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while psutil.pid_exists(pid) and time.monotonic() < deadline:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    return
            except psutil.NoSuchProcess:
                return
            time.sleep(0.05)

    def stop(self) -> None:
        for pid, _work in self.agents.values():
            self.kill(pid)
        self.kill(self.scheduler_pid)


def start_cluster(root: Path, certs: Path | None = None) -> Cluster:
    """A scheduler on 127.0.0.1 (mutual TLS with ``certs``) and agents a1 (linux) and a2 (linux, gpu)."""
    import json

    from buildyard.dask.certs import load_tls
    from buildyard.dask.cluster import scheduler_argv, scheduler_env

    sched_file = root / "scheduler.json"
    tls = load_tls(certs, "scheduler") if certs is not None else None
    pid = _detached(
        scheduler_argv(port=0, scheduler_file=sched_file, tls=tls),
        root,
        root / "scheduler.log",
        scheduler_env(HEARTBEAT_S, tls=tls is not None),
    )
    deadline = time.monotonic() + 30
    address = ""
    while time.monotonic() < deadline and not address:
        try:
            address = json.loads(sched_file.read_text())["address"]
        except (OSError, ValueError, KeyError):
            time.sleep(0.05)
    assert address, (root / "scheduler.log").read_text()
    made = Cluster(address, root, pid, certs=certs)
    try:
        made.start_agent("a1", labels=("linux",), resources={"cpus": 2})
        made.start_agent("a2", labels=("linux", "gpu"), resources={"cpus": 2})
        made.wait_for(2)
    except BaseException:
        made.stop()
        raise
    return made


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    made = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from buildyard.dask.certs import generate

    out = tmp_path_factory.mktemp("certs") / "cluster"
    generate(out)
    return out


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[Any]:
    made = start_cluster(tmp_path_factory.mktemp("tls-cluster"), certs)
    try:
        yield made
    finally:
        made.stop()


def _python() -> str:
    return sys.executable


@pytest.fixture
def fresh_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster of the test's own (for a test that kills its scheduler)."""
    made = start_cluster(tmp_path_factory.mktemp("fresh-cluster"))
    try:
        yield made
    finally:
        made.stop()
