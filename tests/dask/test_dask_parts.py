"""The dask plug-in's pure parts: its registration, scheduler addresses, agents' labels and resources."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildyard.dask.cluster import agent_argv, parse_labels, parse_resources, parse_size
from buildyard.dask.executor import DaskExecutor, scheduler_address
from buildyard.engine.executors import ExecutorRegistry, split_target
from buildyard.errors import UsageError


def test_dask_urls_select_the_shipped_plugin_without_installed_metadata(monkeypatch) -> None:
    registry = ExecutorRegistry()
    monkeypatch.setattr("buildyard.engine.executors.metadata.entry_points", lambda **_: [])
    assert isinstance(registry.create("tls://h:8786"), DaskExecutor)
    made = registry.create("dask://127.0.0.1:8786")
    assert isinstance(made, DaskExecutor) and made.address == "tcp://127.0.0.1:8786"
    made.close()  # never connected: nothing to release
    assert "dask" in registry.names()
    assert split_target("local") == ("local", "")


@pytest.mark.parametrize(
    ("target", "address"),
    [
        ("127.0.0.1:1", "tcp://127.0.0.1:1"),
        ("localhost", "tcp://localhost:8786"),
        ("tls://h:9", "tls://h:9"),
        ("tcp://127.0.0.2:2/", "tcp://127.0.0.2:2"),
        ("tcp://[::1]:3", "tcp://[::1]:3"),
    ],
)
def test_scheduler_addresses(target: str, address: str) -> None:
    assert scheduler_address(target) == address


@pytest.mark.parametrize("target", ["h:1", "10.0.0.1", "tcp://192.0.2.1:2", "tcp://example.org:3"])
def test_plain_tcp_off_loopback_is_refused(target: str) -> None:
    with pytest.raises(UsageError, match="plain TCP is allowed on loopback only"):
        scheduler_address(target)
    with pytest.raises(UsageError, match="tls://HOST:PORT"):
        scheduler_address("udp://127.0.0.1:1")


def test_agent_options_are_checked_with_one_line() -> None:
    assert parse_resources("cpus=8, mem=16G") == {"cpus": 8.0, "mem": 16 * 1024**3}
    assert parse_labels("linux, gpu,linux") == ("gpu", "linux")
    assert parse_size("512M") == 512 * 1024**2
    for bad in ("cpus", "disk=3", "mem=lots"):
        with pytest.raises(UsageError, match=r"resource|size"):
            parse_resources(bad)
    with pytest.raises(UsageError, match="label"):
        parse_labels("bad label!")
    with pytest.raises(UsageError, match="dask://HOST:PORT"):
        scheduler_address("")
    argv = agent_argv("tcp://127.0.0.1:1", work_dir=Path("/w"), labels=("gpu",), slots=2)
    # no --resources: one cpu per slot, so default jobs (cpus=1) fit beside agents that declare cpus
    assert argv[argv.index("--resources") + 1] == "cpus=2 label-gpu=1e+06"
    argv = agent_argv("tcp://127.0.0.1:1", work_dir=Path("/w"), resources={"cpus": 8, "mem": 1024}, slots=2)
    assert argv[argv.index("--resources") + 1] == "cpus=8 mem=1024"
    assert argv[argv.index("--dashboard-address") + 1] == "127.0.0.1:0"


def test_the_job_files_are_served_on_loopback_for_a_loopback_scheduler() -> None:
    from buildyard.dask.executor import serving_host

    assert serving_host("tcp://127.0.0.1:8786") == "127.0.0.1"
    assert serving_host("tls://localhost:8786") == "127.0.0.1"
