"""Process lifecycle with real subprocesses: output, exit codes, timeouts, trees, cancellation."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from buildyard.engine.process import run_process
from buildyard.engine.watchdog import kill_marked, last_pid
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


def _escaped_daemon(tmp_path: Path, marker: str) -> int:
    """Start a job that leaves a daemon outside its process group (setsid); return the daemon's pid."""
    pidfile = tmp_path / "daemon"
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
    return pid


def test_kill_marked_finds_escaped_daemons_younger_than_the_run(tmp_path: Path) -> None:
    marker = f"BUILDYARD_RUN_ID=test{os.getpid()}"
    before = last_pid()
    pid = _escaped_daemon(tmp_path, marker)
    assert kill_marked(marker, since=last_pid()) == 0  # older than the bound: not looked at
    assert not gone(pid, wait=0)
    assert kill_marked(marker, since=before) == 1
    assert gone(pid)


def test_kill_marked_scans_everything_after_pids_wrapped(tmp_path: Path) -> None:
    marker = f"BUILDYARD_RUN_ID=wrap{os.getpid()}"
    pid = _escaped_daemon(tmp_path, marker)
    assert kill_marked(marker, since=last_pid() + 1000) == 1  # a bound above the last pid: wrapped
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


#: Prints what a job process sees of its own set-up, one fact per line. The shell reports the signals
#: it was started with ignored (Python would ignore SIGPIPE on its own), with builtins only; the
#: blocked ones are read by Python, first thing, in its single thread: a shell's own mask is not the
#: one it was started with while it runs a builtin or waits (dash blocks signals meanwhile, so reading
#: it there failed about half the time on a loaded machine).
_SHELL_INSPECT = (
    "while IFS= read -r l; do case $l in SigIgn:*) "
    'printf "%s %s\\n" "${l%%:*}" "${l##*[[:space:]]}";; esac; done < /proc/$$/status; exec "$0" -c "$1"'
)

_INSPECT = """
with open('/proc/self/status') as status:  # before anything else: what exec handed over
    print('SigBlk', next(l.split()[1] for l in status if l.startswith('SigBlk:')))
import os, signal
fds = []
for fd in sorted(map(int, os.listdir('/proc/self/fd'))):
    try:
        os.fstat(fd)
        fds.append(fd)
    except OSError:
        pass  # the listing's own fd
print('fds', fds)
print('leader', os.getsid(0) == os.getpid() == os.getpgid(0))
print('stdin', repr(os.read(0, 10)))
print('cwd', os.getcwd())
"""


@pytest.mark.parametrize("where", ["here", "elsewhere"])
def test_a_job_starts_clean_whichever_way_it_is_spawned(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """posix_spawn (in the current directory) and Popen (elsewhere) give a job the same start."""
    monkeypatch.chdir(tmp_path)
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    cwd = str(tmp_path if where == "here" else job_dir)
    leak_r, leak_w = os.pipe()
    os.set_inheritable(leak_w, True)  # an fd inherited from outside: a job must not get it
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    out: list[bytes] = []
    try:
        result = asyncio.run(
            run_process(
                ["sh", "-c", _SHELL_INSPECT, sys.executable, _INSPECT], env=dict(os.environ), cwd=cwd,
                timeout=30,
                on_output=out.append,
            )
        )  # fmt: skip
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(leak_w)
        os.close(leak_r)
    facts = dict(line.split(" ", 1) for line in b"".join(out).decode().splitlines())
    assert result.exit_code == 0, facts
    # glibc's posix_spawn (make's too) leaves its two internal signals (32, 33) ignored: no program
    # can use them. Nothing else may be ignored: SIGPIPE, ignored by this Python process, is default.
    ignored = int(facts.pop("SigIgn"), 16) & ~(1 << 31 | 1 << 32)
    assert ignored == 0, f"ignored signals: {ignored:#x}"
    assert facts == {
        "fds": "[0, 1, 2]",
        "leader": "True",
        "SigBlk": "0000000000000000",
        "stdin": "b''",
        "cwd": cwd,
    }


def test_the_program_is_found_on_the_jobs_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    tool = tmp_path / "bin" / "only-here"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho found $1\n")
    tool.chmod(0o755)
    env = {**os.environ, "PATH": f"{tool.parent}:{os.environ['PATH']}"}
    out: list[bytes] = []
    result = asyncio.run(
        run_process(["only-here", "x"], env=env, cwd=str(tmp_path), timeout=30, on_output=out.append)
    )
    assert (result.exit_code, b"".join(out)) == (0, b"found x\n")
    out.clear()  # the same name on this process's PATH (where it is not): cannot start
    result = asyncio.run(
        run_process(["only-here"], env=dict(os.environ), cwd=str(tmp_path), timeout=30, on_output=out.append)
    )
    assert result.exit_code == 127 and b"cannot start 'only-here'" in b"".join(out)
