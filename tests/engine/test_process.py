"""Process lifecycle with real subprocesses: output, exit codes, timeouts, trees, cancellation."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from buildyard.engine.process import kill_marked, run_process
from by_testutil import STUBBORN, gone


async def collect(
    argv: list[str], timeout: float | None = None, grace: float = 0.3
) -> tuple[int, bool, bytes]:
    out: list[bytes] = []
    result = await run_process(
        argv, env=dict(os.environ), cwd=os.getcwd(), timeout=timeout, on_output=out.append, grace=grace
    )
    return result.exit_code, result.timed_out, b"".join(out)


def test_output_and_exit_code() -> None:
    code, timed_out, out = asyncio.run(collect(["bash", "-c", "echo out; echo err >&2; exit 3"]))
    assert (code, timed_out) == (3, False)
    assert out.splitlines() == [b"out", b"err"]


def test_stdin_is_closed() -> None:
    code, _, out = asyncio.run(collect(["bash", "-c", "cat; echo done"]))
    assert code == 0 and out == b"done\n"


def test_missing_program_is_exit_127() -> None:
    code, _, out = asyncio.run(collect(["/nonexistent/prog"]))
    assert code == 127 and b"cannot start" in out


def test_timeout_kills_tree_even_when_sigterm_is_ignored(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    start = time.monotonic()
    code, timed_out, out = asyncio.run(
        collect([sys.executable, "-c", STUBBORN, str(pids)], timeout=1.0, grace=0.3)
    )
    elapsed = time.monotonic() - start
    assert timed_out and code == 128 + 9 and b"ready" in out
    assert elapsed < 5
    parent, child = map(int, pids.read_text().split())
    assert gone(parent) and gone(child)


def test_background_processes_die_with_the_job() -> None:
    code, _, _ = asyncio.run(collect(["bash", "-c", "sleep 30 & echo $! > /dev/null; exit 0"]))
    assert code == 0  # returns promptly: the leftover sleep was killed with the group (pipe closed)


def test_cancellation_kills_and_reraises(tmp_path: Path) -> None:
    pids = tmp_path / "pids"

    async def main() -> None:
        task = asyncio.create_task(collect([sys.executable, "-c", STUBBORN, str(pids)]))
        while not pids.exists() or not pids.read_text():
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    parent, child = map(int, pids.read_text().split())
    assert gone(parent) and gone(child)


def test_kill_marked_finds_escaped_daemons(tmp_path: Path) -> None:
    pidfile = tmp_path / "daemon"
    marker = f"BUILDYARD_RUN_ID=test{os.getpid()}"
    env = {**os.environ, "BUILDYARD_RUN_ID": marker.split("=")[1]}
    script = f"setsid bash -c 'echo $$ > {pidfile}; exec sleep 60' </dev/null >/dev/null 2>&1 & sleep 0.5"

    async def run() -> None:
        await run_process(
            ["bash", "-c", script], env=env, cwd=str(tmp_path), timeout=10, on_output=lambda _b: None
        )

    asyncio.run(run())
    deadline = time.monotonic() + 5
    while (not pidfile.exists() or not pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    assert not gone(pid, wait=0)  # it escaped the process group
    assert kill_marked(marker) >= 1
    assert gone(pid)


def test_resource_figures_of_the_tree() -> None:
    """CPU time includes waited-for children; peak RSS is sampled over the whole tree."""
    hog = (
        "x = bytes(range(256)) * (600 * 1024); import time; t = time.process_time()\n"
        "while time.process_time() - t < 0.8: pass"
    )

    async def main() -> tuple[float, int]:
        result = await run_process(
            ["bash", "-c", f"{sys.executable} -c '{hog}'"],
            env=dict(os.environ),
            cwd=os.getcwd(),
            timeout=20,
            on_output=lambda _b: None,
        )
        return result.cpu_seconds, result.peak_rss

    cpu, rss = asyncio.run(main())
    assert cpu >= 0.4
    assert 150 * 1024 * 1024 <= rss < 400 * 1024 * 1024
